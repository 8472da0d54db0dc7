# `make repro` runs the whole pipeline on the embedded defaults; `make test` runs the suite.
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
# sae-probes ships the sparse-probing benchmark's data; its own dependencies are heavy and unused.
SAE_PROBES := sae-probes==0.4.2

.PHONY: install repro test lint format bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q torch==2.13.0 -e '.[test]'
	$(PYTHON) -m pip install -q --no-deps $(SAE_PROBES)
	touch $@

install: $(VENV)/.installed

repro: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV)
