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

.PHONY: setup demo test browser graphviz bench diagrams clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml Makefile
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test,slurm,ray]"
	touch $(STAMP)

setup: $(STAMP) graphviz

# The main job: profile one epoch on the embedded corpus, draw both diagrams, write the report.
demo: $(STAMP) graphviz
	$(LMPROF) profile --fn train --components --memory --out $(DEMO_RUN) --force
	$(LMPROF) diagram flow --from $(DEMO_RUN) --out $(DEMO_RUN)/flow.svg
	$(LMPROF) diagram bptt --out $(DEMO_RUN)/bptt.svg
	$(LMPROF) report $(DEMO_RUN)
	@echo
	@echo "make demo wrote:"
	@echo "  $(DEMO_RUN)/result.json   everything measured (lmprof show $(DEMO_RUN) prints it again)"
	@echo "  $(DEMO_RUN)/lines.lprof   line_profiler's file (python -m line_profiler $(DEMO_RUN)/lines.lprof)"
	@echo "  $(DEMO_RUN)/flow.svg      the program's flow chart, shaded by measured time"
	@echo "  $(DEMO_RUN)/bptt.svg      the unrolled BPTT autograd graph"
	@echo "  $(DEMO_RUN)/report.html   all of it on one page: open it in a browser"

# Regenerate diagrams/ (the flow chart shaded from a wikitext-2-lite run when ../shared is beside;
# 50 batches, so its colours are shares projected to a full epoch, as its title says).
DIAGRAM_DATA ?= $(wildcard ../shared/data/wikitext-2-lite)
diagrams: $(STAMP) graphviz
	$(LMPROF) diagram flow --profile $(if $(DIAGRAM_DATA),--data $(DIAGRAM_DATA)) --max-batches 50 --profile-out runs/diagrams --force --out diagrams/flow.svg
	$(LMPROF) diagram flow --from runs/diagrams --out diagrams/flow.png
	$(LMPROF) diagram bptt --out diagrams/bptt.svg
	$(LMPROF) diagram bptt --out diagrams/bptt.png

# Speed and overhead of every instrument, side by side (not part of make test; run on an idle machine).
bench: $(STAMP) graphviz
	$(PY) benchmarks/run.py
	$(PY) benchmarks/bench_speedlab.py  # speedlab's goal: the best combination's time to quality (minutes)

test: $(STAMP) browser graphviz
	$(PY) -m pytest

# Headless Chromium for the report's browser test; where it cannot be installed, that test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } >/dev/null 2>&1 || echo "make: no chromium here (the browser test will skip)"

# The system Graphviz renders the diagrams (svg, png, pdf); where it cannot be installed, graphviz-pure (pip) draws svg and png.
graphviz:
	@command -v dot >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; } >/dev/null 2>&1 || echo "make: no system Graphviz here (diagrams use graphviz-pure: svg and png only)"

clean:
	rm -rf runs sweeps .pytest_cache
