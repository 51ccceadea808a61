# `make repro` runs the whole study, `make test` the test suite; both create .venv when missing.
VENV ?= .venv
VENV_REAL := $(shell readlink -f $(VENV) 2>/dev/null || echo $(VENV))
PY := $(VENV_REAL)/bin/python
DEPS_HASH := $(shell cat pyproject.toml | sha256sum | cut -c1-12)
STAMP := $(VENV_REAL)/.installed-$(DEPS_HASH)
RUN := PATH="$(VENV_REAL)/bin:$$PATH" PYTHONPATH="$(CURDIR)/src"

.PHONY: install repro test lint bench
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv "$(VENV_REAL)"
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

repro: install
	$(RUN) $(PY) -m dvc repro

test: install
	$(RUN) $(PY) -m ruff check src stages tests bench
	$(RUN) $(PY) -m pytest -q tests

lint: install
	$(RUN) $(PY) -m ruff check src stages tests bench

bench: install
	$(RUN) $(PY) bench/train_step.py
	$(RUN) $(PY) bench/extract.py
	$(RUN) $(PY) bench/attack.py
