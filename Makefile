# `make test` and `make demo` each create (or reuse) the virtual environment and install the
# pinned stack from constraints.txt before running. Nothing needs to be installed by hand.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.egohod-installed
export WANDB_MODE ?= offline
PYTEST_ARGS ?=

.PHONY: venv test test-all demo clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/system_deps.sh
	bash scripts/system_deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c constraints.txt -e ".[all]"
	touch $@

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

# A short Franka Kitchen BC cell (microwave, left camera): the privileged `state` encoder and a
# random-weight egovideo_tiny, 10 generated demos, 2000 steps, 10 evaluation episodes every 500.
DEMO_DIR ?= outputs/demo
demo: $(STAMP)
	$(PY) robot/train_bc.py --multirun encoder=state,egovideo_tiny demos.num=10 train.steps=2000 \
		eval.every=500 eval.episodes=10 eval.videos=1 resume=false hydra.sweep.dir=$(DEMO_DIR)
	$(PY) robot/summarize.py $(DEMO_DIR)

clean-venv:
	rm -rf $(VENV)
