# `make repro` runs the whole pipeline on the embedded defaults; `make test` runs the suite.
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
# sae-probes ships the sparse-probing benchmark's data; its own dependencies are heavy and unused.
SAE_PROBES := sae-probes==0.4.2

.PHONY: install repro test lint format bench clean

# constraints.txt pins every package (the model and data packages too) to the versions the
# suite passes with, so that two machines install the same thing.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q -c constraints.txt torch==2.13.0 -e '.[test]'
	$(PYTHON) -m pip install -q -c constraints.txt --no-deps $(SAE_PROBES)
	touch $@

# make test also checks the SAEs saeprobe writes against the real SAELens.
$(VENV)/.saelens: $(VENV)/.installed
	$(PYTHON) -m pip install -q -c constraints.txt torch==2.13.0 -e '.[test,saelens]'
	touch $@

install: $(VENV)/.installed

repro: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro

test: install $(VENV)/.saelens
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
