# Two commands: `make demo` runs the mock-chain story, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit crds bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kubectl-lane demo

test: $(STAMP)
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

crds: $(STAMP)
	$(BIN)/python -m lanes.api.crds --write crds charts/lanes/crds

bench: $(STAMP)
	$(BIN)/python bench/render.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
