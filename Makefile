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

# the study behind the book: book/sweeps/$(STUDY).yaml, results under runs/
STUDY ?= default
SWEEP := book/sweeps/$(STUDY).yaml

.PHONY: venv test book data data-teacher study runs bench clean-book

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) tests

data: $(STAMP)
	$(BIN)/python -m matscale data ensure

# the CHGNet-labelled dataset (omat24-teacher-v1, ~70 elements): ~15 CPU-minutes, once; then
# refresh its committed summary (book/data/teacher_stats.json) that the book reads
data-teacher: $(STAMP)
	nice -n 10 $(BIN)/python -m matscale data ensure --dataset omat24-teacher-v1
	$(BIN)/python -m matscale data summary --dataset omat24-teacher-v1 --out book/data/teacher_stats.json

# rerun the study from scratch: earlier results move to runs/_archive/<time>/, then every point trains
study: $(STAMP) data
	$(BIN)/python -m matscale.study $(STUDY) --archive
	$(MAKE) --no-print-directory runs

# top the study up: finished runs (the committed ones included) are skipped, missing or interrupted
# ones train; then each finished run's equivariance error is measured and stored next to it.
# A failed point does not stop the book: its page lists it with its error.
runs: $(STAMP) data
	$(BIN)/python -m matscale sweep $(SWEEP) --no-progress || echo "warning: some points of $(SWEEP) failed; the study page lists them"
	$(BIN)/python -m matscale.study $(STUDY)

book: $(STAMP) data runs
	$(BIN)/jupyter-book build -W -n --keep-going .

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-book:
	rm -rf _build
