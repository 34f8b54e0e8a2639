"""Data-layer throughput, with ratios against baselines measured in the same run (~1 min, 2 cores).

1. Generation: a small synthetic set with 2 worker processes (structures/s, end to end), and
   the labelling core in one process with matscale's `emt` (ASE EMT + matscipy neighbour list)
   against the unmodified ASE EMT on the same jobs.
2. Reading every row of that set: raw `ase.db.connect(...).get(id=...).toatoms()` (baseline)
   against matscale's StructureDataset, cold (decode each time) and cached (in memory).

    python bench/bench_data.py [--structures 600] [--workers 2]
"""
from __future__ import annotations

import os

# single-threaded BLAS, as in the generator's workers: on a busy 2-core machine, threaded BLAS
# makes the tiny 3x3 matrix functions of the NPT integrator ~50x slower
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:10.1f}/s"


def bench_generation(root: Path, structures: int, workers: int) -> None:
    from matscale.data.synth import synthesize

    t = time.perf_counter()
    r = synthesize(root, structures, seed=0, workers=workers, progress=False)
    dt = time.perf_counter() - t
    n = r.total("train") + r.total("val")
    print(f"generate {n} structures, {workers} workers: {dt:6.1f} s  {_rate(n, dt)} structures "
          f"(incl. ~2 s worker start-up)")

    from matscale.data import synth

    jobs = [j for j in synth.plan(20_000) if j.split == "train"]
    sample = jobs[:: max(1, len(jobs) // 10)][:10]  # spread over all four parent families
    times = {}
    for name in ("emt-ase", "emt"):
        t = time.process_time()
        frames = sum(len(f) for _, f in synth.run_jobs_here(sample, name, seed=0))
        times[name] = time.process_time() - t
        print(f"label core, calculator {name:8s}: {frames} structures in {times[name]:5.1f} CPU s "
              f"{_rate(frames, times[name])} per core")
    print(f"  ratio emt / emt-ase (speed-up of the matscipy neighbour list): {times['emt-ase'] / times['emt']:.2f}x")


def bench_reading(root: Path) -> None:
    import ase.db

    from matscale.data.reader import open_split

    ds = open_split(root, "train")
    n, atoms_total = len(ds), int(ds.natoms.sum())
    # baseline: ASE's database API, row by row
    t = time.perf_counter()
    for path in ds.files:
        db = ase.db.connect(str(path), readonly=True, use_lock_file=False)
        for i in db.ids:
            row = db.get(id=i)
            a = row.toatoms()
            a.get_forces()
    base = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(n):
        ds[i].get_forces()
    cold = time.perf_counter() - t
    cached = open_split(root, "train", cache=True).preload()
    t = time.perf_counter()
    for i in range(n):
        cached[i].get_forces()
    warm = time.perf_counter() - t
    t = time.perf_counter()
    natoms_sum = int(open_split(root, "train").natoms.sum())
    meta = time.perf_counter() - t
    assert natoms_sum == atoms_total
    print(f"read {n} structures ({atoms_total} atoms):")
    print(f"  raw ase.db get+toatoms  {base:6.2f} s {_rate(n, base)} structures {_rate(atoms_total, base)} atoms  (baseline)")
    print(f"  StructureDataset cold   {cold:6.2f} s {_rate(n, cold)} structures {_rate(atoms_total, cold)} atoms  "
          f"ratio {base / cold:.2f}x")
    print(f"  StructureDataset cached {warm:6.2f} s {_rate(n, warm)} structures {_rate(atoms_total, warm)} atoms  "
          f"ratio {base / warm:.2f}x")
    print(f"  open + natoms for size bucketing from metadata.npz (no decoding): {meta * 1e3:.0f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--structures", type=int, default=600, help="training structures of the benchmark set")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = Path(tmp) / "set"
        bench_generation(root, args.structures, args.workers)
        bench_reading(root)


if __name__ == "__main__":
    main()
