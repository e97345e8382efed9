# The two commands: `make demo` runs the whole system, `make test` passes every test.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch node_modules/.installed

venv: $(STAMP) node_modules/.installed

demo: venv
	$(VENV)/bin/minutely demo

test: venv
	$(PY) scripts/ensure_chromium.py
	$(VENV)/bin/ruff check minutely tests bench scripts
	$(VENV)/bin/mypy
	$(PY) -m pytest -m "not browser"
	# Playwright's sync API keeps an event loop running for its session: its own process
	$(PY) -m pytest -m browser tests/browser

bench: venv
	$(PY) bench/bench_decode.py
	$(PY) bench/bench_pipeline.py

clean:
	rm -rf $(VENV) node_modules build .pytest_cache .mypy_cache
