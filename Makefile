# `make test` and `make demo` each create (or reuse) the virtual environment and install the
# pinned stack from constraints.txt before running. Nothing needs to be installed by hand.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.egohod-installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= $(MUJOCO_GL)
export WANDB_MODE ?= offline
PYTEST_ARGS ?=

.PHONY: venv test test-all demo bench clean-venv

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

demo: $(STAMP)
	$(PY) -m egohod.demo

clean-venv:
	rm -rf $(VENV)
