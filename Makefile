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

.PHONY: venv test test-fast browser book data data-teacher study runs bench bench-gpu clean-book

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP)

# the full suite (what CI runs): Chromium first, for the book-rendering tests
test: $(STAMP) browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) tests

# the edit loop: everything but the tests marked slow (over ~20 s each)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow" tests

# headless Chromium, a prerequisite of the book tests (they skip without it): Debian's chromium
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then \
		echo "chromium: $$(command -v chromium || echo /usr/bin/chromium)"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "note: chromium is missing and apt-get is unavailable here; install Chromium by hand," \
		     "or the book-rendering tests will be skipped"; \
	else \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends chromium || { echo "error: apt-get could not install chromium"; exit 1; }; \
	fi

data: $(STAMP)
	$(BIN)/python -m matscale data ensure

# the CHGNet-labelled dataset (omat24-teacher-v1, 52 elements): ~4 CPU-minutes, once; then
# refresh its committed summary (book/data/teacher_stats.json) that the book reads
data-teacher: $(STAMP)
	nice -n 10 $(BIN)/python -m matscale data ensure --dataset omat24-teacher-v1
	$(BIN)/python -m matscale data summary --dataset omat24-teacher-v1 --out book/data/teacher_stats.json

# rerun the study from scratch: earlier results move to runs/_archive/<time>/, then every point trains
study: $(STAMP) data
	$(BIN)/python -m matscale study $(STUDY) --archive
	$(MAKE) --no-print-directory runs

# top the study up: finished runs (the committed ones included) are skipped, missing or interrupted
# ones train; then each finished run's equivariance error is measured and stored next to it.
# A failed point does not stop the book: its page lists it with its error.
runs: $(STAMP) data
	$(BIN)/python -m matscale sweep $(SWEEP) --no-progress || echo "warning: some points of $(SWEEP) failed; the study page lists them"
	$(BIN)/python -m matscale study $(STUDY)

book: $(STAMP) data runs
	$(BIN)/jupyter-book build -W -n --keep-going .

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# the benches on a CUDA GPU, figures (MFU, ratios) written to bench/results/gpu/
bench-gpu: $(STAMP)
	$(BIN)/python bench/run_gpu.py

clean-book:
	rm -rf _build
