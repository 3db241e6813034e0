# One entry point for people and CI. Every target creates the virtual environment if needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make serve` needs only the server: its own stamp, so a fresh clone installs the runtime set
# (no test, browser or docs tooling). The development set includes it and sets both stamps.
RUNTIME_STAMP := $(VENV)/.installed-runtime
HOST   ?= 127.0.0.1
PORT   ?= 8000
ARGS   ?=

# Bytecode for the package, as pip writes it for a regular install: an editable install on a
# machine that sets PYTHONDONTWRITEBYTECODE would compile every module again at each start-up
# (about 0.1 s). Incremental: only changed files are compiled again.
BYTECODE := $(BIN)/python -m compileall -q emulator

.PHONY: install serve test fuzz lint format docs bench count soak clean browser node

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BYTECODE)
	touch $(STAMP) $(RUNTIME_STAMP)

$(RUNTIME_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	$(BYTECODE)
	touch $(RUNTIME_STAMP)

install: $(STAMP)

serve: $(RUNTIME_STAMP)
	@$(BYTECODE)
	$(BIN)/aio-emulator serve --host $(HOST) --port $(PORT) $(ARGS)

# The dashboard's browser tests drive Debian's Chromium (Playwright's Python package, never
# `playwright install`: no browser download). As root (CI) a missing one is installed; otherwise
# those tests skip with the command to run, except under CI=true, where they fail.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	  else \
	    echo "make: $(CHROMIUM) missing; browser tests skip (sudo apt-get install chromium chromium-driver)"; \
	  fi; \
	fi

# The openai npm package for tests/chat/test_node.py, from its lock file: once, then only when
# the lock changes. Without npm the test skips (fails under CI=true).
NODE_TESTS := tests/node
$(NODE_TESTS)/node_modules/.package-lock.json: $(NODE_TESTS)/package-lock.json
	@if command -v npm >/dev/null; then cd $(NODE_TESTS) && npm ci --no-audit --no-fund --silent; \
	else echo "make: npm missing; the Node chat test skips (install Node 20 and npm)"; fi

node: $(NODE_TESTS)/node_modules/.package-lock.json

# Lint, then the documentation site with --strict (a broken link or a page missing from the
# navigation fails), then the tests (the package check included: ARGS='-m "not package"' skips it).
test: $(STAMP) browser node
	$(BIN)/ruff check emulator tests benchmarks
	$(BIN)/ruff format --check emulator tests benchmarks
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(VENV)/site
	$(BIN)/python -m pytest $(ARGS)

# Schemathesis over every operation with every check, 100 examples per operation and input kind
# (make test runs 30): AIO_FUZZ_EXAMPLES=500 for more.
AIO_FUZZ_EXAMPLES ?= 100
fuzz: $(STAMP)
	AIO_FUZZ_EXAMPLES=$(AIO_FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py tests/chat/test_fuzz.py $(ARGS)

# The documentation site (MkDocs, Material theme) into site/; `mkdocs serve` previews it live.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check emulator tests benchmarks
	$(BIN)/ruff format --check emulator tests benchmarks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format emulator tests benchmarks
	$(BIN)/ruff check --fix emulator tests benchmarks

bench: $(STAMP)
	@$(BYTECODE)
	$(BIN)/python benchmarks/bench.py $(ARGS)
	$(BIN)/python benchmarks/bench_plugin.py

# Instructions per request, emulator vs bare app, counted by callgrind (steady to about 1%, where
# wall-clock figures move 10-30% between runs): the instrument for judging a hot-path change.
count: $(STAMP)
	@command -v valgrind >/dev/null || { echo "make count needs valgrind (apt-get install valgrind)"; exit 1; }
	$(BIN)/python benchmarks/count.py $(ARGS)

# Load test: concurrent create -> poll -> download cycles against a separate server process;
# throughput, p50/p99, errors, tasks created vs ended, memory (ARGS="--tasks 20000" to shorten).
soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py $(ARGS)

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache
