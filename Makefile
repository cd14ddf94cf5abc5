# lmprof: two commands do all the set-up.
#   make demo   create .venv if missing, install lmprof, run the main job on the embedded corpus
#   make test   same set-up, then the test suite
# torch is installed first, pinned, so nothing pulls a multi-GB CUDA build by accident.
# Elsewhere, pick your build: make demo TORCH_SPEC="torch==2.13.0" TORCH_INDEX=https://download.pytorch.org/whl/cpu

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LMPROF := $(VENV)/bin/lmprof
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.lmprof-installed
DEMO_RUN ?= runs/demo

.PHONY: setup demo test browser bench diagrams clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml Makefile
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test,slurm,ray]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(LMPROF) profile --fn train --out $(DEMO_RUN)

test: $(STAMP) browser
	$(PY) -m pytest

# Headless Chromium for the report's browser test; where it cannot be installed, that test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } >/dev/null 2>&1 || echo "make: no chromium here (the browser test will skip)"

clean:
	rm -rf runs sweeps .pytest_cache
