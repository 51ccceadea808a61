# `make repro` runs the whole study, `make test` the test suite; both create .venv when missing.
VENV ?= .venv
VENV_REAL := $(shell readlink -f $(VENV) 2>/dev/null || echo $(VENV))
PY := $(VENV_REAL)/bin/python
LOCK := requirements.lock
DEPS_HASH := $(shell cat pyproject.toml $(LOCK) | sha256sum | cut -c1-12)
STAMP := $(VENV_REAL)/.installed-$(DEPS_HASH)
RUN := PATH="$(VENV_REAL)/bin:$$PATH" PYTHONPATH="$(CURDIR)/src"

.PHONY: install lock repro test chromium lint bench gpu-check
install: $(STAMP)

# Exact versions with hashes from the lock file; the package itself is installed without resolving.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv "$(VENV_REAL)"
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	rm -f $(VENV_REAL)/.installed-*
	touch $(STAMP)

# Regenerate the lock file from pyproject.toml's ranges (newest versions that satisfy them).
lock:
	python3 -m pip install -q uv
	python3 -m uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --constraint constraints.txt --upgrade -o $(LOCK)

repro: install
	$(RUN) $(PY) -m dvc repro

# checked (or installed, as root with apt) before any test runs: the offline-plots test needs it
chromium:
	.ci/chromium

test: install chromium
	$(RUN) $(PY) -m ruff check src stages tests bench
	$(RUN) $(PY) -m pytest -q tests

lint: install
	$(RUN) $(PY) -m ruff check src stages tests bench

bench: install
	$(RUN) $(PY) bench/train_step.py
	$(RUN) $(PY) bench/extract.py
	$(RUN) $(PY) bench/extract_reuse.py
	$(RUN) $(PY) bench/attack.py
	$(RUN) $(PY) bench/artifact_codec.py --artifacts $(wildcard data/attacks/baseline-0/pgd)  # about 2 min on 2 cores
	$(RUN) $(PY) bench/full_scale.py
	$(RUN) $(PY) bench/memory.py  # about 10 min on 2 cores
	$(RUN) $(PY) bench/attack_convergence.py  # needs the default run's models (make repro)
	$(RUN) $(PY) bench/scoring_as_published.py  # the same

# on a CUDA machine: tiny repro + training/attack/evaluate throughput for the README's 1 GPU column
gpu-check: install
	bench/gpu_check.sh
