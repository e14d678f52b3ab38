# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   — create .venv, install, run the demo
#   make test   — create .venv, install, run the whole suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS := sim,edge,cloud,train,dev
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "ecgstream needs Python 3.11 (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ecgstream demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Inner loop: everything but the slow and service-dependent tests.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not mosquitto"

# The guard rails CI runs before the tests: style, the layering contract (pyproject's
# [tool.importlinter]) and types on every package.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy settings mqtt_client protocol firmware_sim models edge cloud evaluation ecgstream bench

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
