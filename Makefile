# One entry point for people and CI. Every target creates the virtual environment if needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
ARGS   ?=

.PHONY: install serve test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/aio-emulator serve --host $(HOST) --port $(PORT) $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check emulator tests benchmarks
	$(BIN)/ruff format --check emulator tests benchmarks
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check emulator tests benchmarks
	$(BIN)/ruff format --check emulator tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format emulator tests benchmarks
	$(BIN)/ruff check --fix emulator tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(ARGS)
	$(BIN)/python benchmarks/bench_plugin.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
