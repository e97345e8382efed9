# The two commands: `make demo` runs the whole system, `make test` passes every test.
# Both install from the locks: requirements-dev.txt (Python, with hashes) and package-lock.json
# (the dashboard's JS). `make lock` renews the Python locks from pyproject.toml: an upgrade is
# a commit of the locks.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
VENDOR := minutely/dashboard/vendor/uplot/LICENSE
# the wheel, and a venv with only it and the runtime lock: what `pip install minutely` gives
WHEEL_DIR  := build/dist
WHEEL_VENV := build/wheel-venv
SOURCES := $(shell find minutely -type f -not -path '*/__pycache__/*' -not -path '*/vendor/*')

.PHONY: demo test venv wheel-venv lock bench clean

$(STAMP): requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	$(VENV)/bin/minutely compile
	touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch node_modules/.installed

# the dashboard's JS and its licence, copied into the package (git-ignored; the wheel has it)
$(VENDOR): node_modules/.installed scripts/vendor-js
	scripts/vendor-js

venv: $(STAMP) $(VENDOR)

demo: venv
	$(VENV)/bin/minutely demo

test: venv
	$(PY) scripts/ensure_chromium.py
	$(PY) scripts/ensure_debian_tools.py
	$(VENV)/bin/ruff check minutely tests bench scripts
	$(VENV)/bin/mypy
	$(PY) -m pytest -m "not browser"
	$(MAKE) --no-print-directory wheel-venv
	# Playwright's sync API keeps an event loop running for its session: its own process
	$(PY) -m pytest -m browser tests/browser

$(WHEEL_DIR)/.built: $(STAMP) $(VENDOR) $(SOURCES) pyproject.toml
	rm -rf $(WHEEL_DIR) build/lib build/bdist.*
	$(PY) -m pip wheel -q --no-deps -w $(WHEEL_DIR) .
	touch $@

$(WHEEL_VENV)/.locked: requirements.txt
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q --require-hashes -r requirements.txt
	touch $@

$(WHEEL_VENV)/.installed: $(WHEEL_VENV)/.locked $(WHEEL_DIR)/.built
	$(WHEEL_VENV)/bin/python -m pip install -q --no-deps --force-reinstall $(WHEEL_DIR)/*.whl
	$(WHEEL_VENV)/bin/minutely compile
	touch $@

# tests/browser/test_wheel.py runs `minutely` from here
wheel-venv: $(WHEEL_VENV)/.installed

# Resolve pyproject.toml's ranges to exact versions with hashes, for every platform, keeping
# the locked versions that still fit (`make lock UPGRADE=--upgrade`, or
# UPGRADE="--upgrade-package nats-py", moves them); the runtime lock takes the dev lock's.
UPGRADE ?=
LOCK_FLAGS := $(UPGRADE) --universal --python-version 3.11 --generate-hashes --custom-compile-command "make lock" -q
lock:
	$(PYTHON) -m venv build/uv
	build/uv/bin/python -m pip install -q --upgrade uv
	build/uv/bin/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) -o requirements-dev.txt
	build/uv/bin/uv pip compile pyproject.toml $(LOCK_FLAGS) -c requirements-dev.txt -o requirements.txt

bench: venv
	$(PY) bench/bench_decode.py
	$(PY) bench/bench_pipeline.py

clean:
	rm -rf $(VENV) node_modules build minutely/dashboard/vendor .pytest_cache .mypy_cache
