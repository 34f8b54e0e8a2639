# matscale: the two set-up commands are `make test` and `make book`.
# Each creates .venv on first use (a stamp keeps later calls from reinstalling) and then acts.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.matscale-installed
# pytest workers: 2 matches the 2-core machines we size for
TEST_WORKERS ?= 2
# one BLAS/OpenMP thread per process: parallelism comes from pytest workers and sweep pools, and
# threaded BLAS on tiny matrices is tens of times slower on 2 shared cores
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: venv test book data study bench clean-book

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) tests

data: $(STAMP)
	$(BIN)/python -m matscale data ensure

book: $(STAMP) data
	$(BIN)/jupyter-book build -W -n --keep-going .

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-book:
	rm -rf _build
