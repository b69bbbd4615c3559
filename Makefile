# Navigator: `make chat` talks to the bot in a terminal, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch goes in first: resolved through sentence-transformers,
# pip would fetch the default build with gigabytes of CUDA libraries.
TORCH_SPEC ?= torch==2.13.0

KNOWLEDGE := $(shell find knowledge -name '*.md' 2>/dev/null)
INDEX_DIR ?= data/index

.PHONY: help install chat index test test-load lint check clean
help:
	@echo "make chat   - install (first time), build the index if needed, chat in the terminal"
	@echo "make test   - install with test extras (first time) and run the tests"
	@echo "make test-load - the crash, load and timing scenarios make test leaves out"
	@echo "make index  - rebuild the knowledge index (only changed sections are embedded)"
	@echo "make check  - validate flows/ and knowledge/ like an editor's CI would"
	@echo "make lint   - ruff"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Navigator needs Python 3.11+ (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(VENV)/.installed

$(INDEX_DIR)/manifest.json: $(VENV)/.installed $(KNOWLEDGE)
	$(BIN)/navigator index --index $(INDEX_DIR)

index: $(VENV)/.installed
	$(BIN)/navigator index --index $(INDEX_DIR)

chat: $(INDEX_DIR)/manifest.json
	@$(BIN)/navigator chat --index $(INDEX_DIR)

# The default run stays under 10 minutes on 2 cores; the few crash, load and timing
# scenarios of 20 s or more each (marked `load`) run apart, and CI runs both.
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not load"

test-load: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m load

lint: $(VENV)/.installed-test
	$(BIN)/ruff check navigator tests benchmarks

check: $(VENV)/.installed
	$(BIN)/navigator check

clean:
	rm -rf $(VENV) data .pytest_cache
