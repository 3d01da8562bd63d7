# The two commands the README promises. Both build .venv themselves on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON3 ?= python3
# two notebooks run at once on 2 cores: one OpenMP thread each, and no busy-waiting threads
TEST_ENV := MPLBACKEND=Agg WANDB_MODE=offline WANDB_SILENT=true OMP_WAIT_POLICY=PASSIVE

.PHONY: demo test install install-dev sync-check nbtest pytest bench readme

# torch is resolved by pip together with torchvision (the CPU wheel on disk breaks torchvision, see docs).
$(VENV)/.installed: settings.ini setup.py
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: settings.ini setup.py
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	$(PY) -m pip install -q -e ".[dev]"
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && { apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || echo "chromium not installed: the explorer browser test will be skipped"; }; } || true
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## make demo: simulate -> train -> embed -> audit -> report, all under runs/demo/
demo: $(VENV)/.installed
	$(BIN)/gravityaudit pipeline --config configs/pipeline/demo.yaml

## make test: notebooks and library in sync, notebook tests, pytest
test: $(VENV)/.installed-dev sync-check nbtest pytest

sync-check:
	$(BIN)/nbdev_export
	@changes=$$(git status --porcelain -- gravityaudit); \
	if [ -n "$$changes" ]; then echo "nbdev_export changed gravityaudit/ (library out of sync with nbs/):"; echo "$$changes"; git --no-pager diff --stat -- gravityaudit; exit 1; fi; \
	echo "sync-check: gravityaudit/ matches nbs/"

# the notebooks run with a temporary folder of their own and must leave no file with content in it (dask keeps empty lock files)
nbtest:
	@scratch=$$(mktemp -d); \
	OMP_NUM_THREADS=1 TMPDIR=$$scratch $(TEST_ENV) $(BIN)/nbdev_test --n_workers 2 --timing $(NBTEST_ARGS); rc=$$?; \
	left=$$(find $$scratch -type f ! -empty | sed "s|^$$scratch/||" | head -20); rm -rf $$scratch; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	if [ -n "$$left" ]; then echo "the notebooks left files in their temporary folder:"; echo "$$left"; exit 1; fi; \
	echo "nbtest: the notebooks left no files in their temporary folder"

pytest:
	$(TEST_ENV) $(BIN)/pytest tests -q -ra --timeout 900 --durations 15

bench:
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

## README.md is written from nbs/index.ipynb (tests/test_readme.py keeps them in step)
readme:
	$(PY) tests/test_readme.py --write
