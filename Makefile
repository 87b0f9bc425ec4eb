# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup test demo bench lint typecheck browser clean

setup: $(STAMP)

# Idempotent: the venv is created once and reinstalled only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Debian's chromium for the status page's browser test (no browser download; there is no internet).
browser:
	@sh scripts/install-browser.sh

test: setup browser
	$(PY) -m ruff check --quiet .
	$(PY) -m mypy --strict protocol
	$(PY) -m pytest

demo: setup
	$(PY) bench/demo.py

bench: setup
	$(PY) bench/codec.py
	$(PY) bench/gateway.py
	$(PY) bench/site.py

lint: setup
	$(PY) -m ruff check .

typecheck: setup
	$(PY) -m mypy --strict protocol

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
