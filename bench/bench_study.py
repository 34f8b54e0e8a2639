"""Cost of a study on this machine: measured per-structure costs -> predicted wall time.

    .venv/bin/python bench/bench_study.py [--study default] [--workers 2] [--steps 3] [--data DIR]

For every (architecture, size) of the study's sweep file, the real training step — the loop of
`matscale.train.train` on a few in-memory batches of the study's size drawn from its training
split, timed between optimiser steps through its `after_step` hook — and one validation batch
are timed in CPU seconds of this process
(so other load on a shared machine inflates the numbers less than wall time would). One real
`python -m matscale train` run of the cheapest model measures the fixed start-up cost of a
run (imports, data, normalisation, the FLOP-counting passes). Each planned point then costs

    start-up + D · decoding + FLOP-counting passes + epochs · D · train cost + validations · n_val · eval cost

and the points are scheduled in file order on `--workers` single-threaded workers (what
`python -m matscale sweep` does). Printed: a table per (arch, size), the predicted wall
time of every point and of the study, and two RATIOS measured in this run: the predicted wall
time over the 60-minute budget of `make study` on 2 cores (< 1: it fits), and the parallel
efficiency (CPU seconds / (workers × wall); 1 = no worker idles).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from matscale import models
from matscale import study as studies
from matscale.data import open_split
from matscale.data.batch import collate
from matscale.train import checkpoint, flops
from matscale.config import TrainConfig
from matscale.train.loss import LossWeights, loss
from matscale.train.normalization import fit_normalization

BUDGET_S = 3600.0


def cpu_time(fn, repeats: int) -> float:
    """Median CPU seconds of `fn()` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return float(np.median(times))


def measure(arch: str, size: str, structures, val_structures, val_batch, steps: int, batch_size: int,
            run_root: str) -> dict:
    """CPU ms per training structure of the REAL training step (`matscale.train.train` on
    steps + 1 in-memory batches, timed between consecutive optimiser steps through the loop's
    `after_step` hook: collation, forward, loss, backward, clipping, AdamW, schedule), CPU ms
    per validation structure, and seconds of the loop's FLOP-counting passes."""
    from matscale.train import loop

    marks: list[float] = []
    loop.after_step = lambda step: marks.append(time.process_time())
    try:
        config = TrainConfig(arch=arch, size=size, epochs=1, batch_size=batch_size, device="cpu", run_root=run_root)
        result = loop.train(config, train_set=structures[: batch_size * (steps + 1)], val_set=val_structures,
                            quiet=True, force=True)
    finally:
        loop.after_step = None
    train = float(np.median(np.diff(marks)))  # one step each; the first step (warm-up) is not an interval
    model, _, _ = checkpoint.load_model(result.run_dir, "last")
    model.eval()

    def evaluate():
        with torch.set_grad_enabled(bool(getattr(model, "conservative", False))):
            model(val_batch)

    ev = cpu_time(evaluate, 1)
    model.train()
    norm = fit_normalization(structures[: batch_size * (steps + 1)])
    scales, weights = norm.loss_scales(), LossWeights.from_config(config)
    natoms = np.array([len(a) for a in structures])
    t = time.process_time()
    flops.measure(model, structures, natoms, batch_size, lambda m, b: loss(m(b), b, weights, scales)[0], collate, "cpu")
    count = time.process_time() - t
    return {"params": result.summary["params_non_embedding"], "train_ms": 1e3 * train / batch_size,
            "eval_ms": 1e3 * ev / val_batch.num_structures, "flop_count_s": count}


def startup_seconds(data: str | None) -> float:
    """CPU seconds of a whole `python -m matscale train` run minus its measured training work."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "matscale", "train", "--arch", "transformer", "--size", "xs", "--frac", "0.01",
               "--epochs", "1", "--val-frac", "0.05", "--run-root", tmp, "--device", "cpu", "--quiet"]
        if data:
            cmd += ["--data", data]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def schedule(durations: list[float], workers: int) -> float:
    """Makespan of running `durations` in order on `workers` (each point takes the first free one)."""
    free = [0.0] * workers
    for d in durations:
        i = int(np.argmin(free))
        free[i] += d
    return max(free) if free else 0.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--study", default="default", help="study name under book/sweeps/ or a sweep file")
    p.add_argument("--workers", type=int, default=2, help="runs in parallel (default 2, one per core)")
    p.add_argument("--steps", type=int, default=3, help="timed training steps per model (default 3)")
    p.add_argument("--data", default=None, help="dataset root (default: the embedded dataset)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    plan = studies.plan(args.study)
    invalid = plan[~plan["valid"]]
    for r in invalid.itertuples():
        print(f"note: {r.run_id} has invalid settings ({r.arch} has no size {r.size!r}?); costed as the "
              "architecture's smallest valid size")
    trainable = plan[~plan["arch"].isin(studies.baseline_archs(plan["arch"]))]
    batch_size = int(trainable["batch_size"].iloc[0])
    frac = float(trainable["frac"].median())
    train_ds = open_split(args.data, "train", frac=frac, seed=0, cache=True)
    val_frac = 0.05
    val_ds = open_split(args.data, "val", frac=val_frac, seed=0, cache=True)
    rng = np.random.default_rng(0)
    t = time.process_time()
    structures = [train_ds[i] for i in range(len(train_ds))]
    norm = fit_normalization(structures)
    prepare_ms = 1e3 * (time.process_time() - t) / len(structures)  # decode + normalisation fit, per structure
    order = rng.permutation(len(structures))
    val_structures = [val_ds[i] for i in range(min(batch_size, len(val_ds)))]
    val_batch = collate(val_structures)
    natoms = np.array([len(a) for a in structures])
    tmp = tempfile.TemporaryDirectory()
    print(f"data: {len(structures)} training structures at frac {frac:g} "
          f"(mean {natoms.mean():.1f} atoms), validation {len(val_ds)} structures; batch {batch_size}; "
          f"decoding + normalisation {prepare_ms:.2f} ms per training structure\n")

    costs = {}
    print(f"{'arch':<14} {'size':<5} {'N':>10} {'train ms/struct':>16} {'eval ms/struct':>15} {'FLOP count s':>13}")
    for (arch, size), _ in trainable[trainable["valid"]].groupby(["arch", "size"], sort=False):
        c = measure(arch, size, [structures[j] for j in order], val_structures, val_batch, args.steps, batch_size,
                    tmp.name)
        costs[(arch, size)] = c
        print(f"{arch:<14} {size:<5} {c['params']:>10,d} {c['train_ms']:>16.1f} {c['eval_ms']:>15.2f} "
              f"{c['flop_count_s']:>13.1f}", flush=True)
    startup = startup_seconds(args.data)
    print(f"\nstart-up of one run (CPU s, transformer-xs, incl. its tiny training): {startup:.1f}")

    n_val = len(val_ds)
    rows = []
    for r in plan.itertuples():
        n_train = len(open_split(args.data, "train", frac=r.frac, seed=r.seed))
        key = (r.arch, r.size)
        if key not in costs:  # an invalid size: cost it as the cheapest size of the arch
            same = [v for (a, _), v in costs.items() if a == r.arch]
            c = min(same, key=lambda v: v["train_ms"]) if same else None
        else:
            c = costs[key]
        if c is None:  # closed-form baseline: decode the data and one evaluation
            seconds = startup + 2e-3 * prepare_ms * n_train
        else:
            validations = r.epochs // r.val_every + (r.epochs % r.val_every != 0)  # + the last epoch
            seconds = (startup + 1e-3 * prepare_ms * n_train + c["flop_count_s"]
                       + 1e-3 * c["train_ms"] * r.epochs * n_train + 1e-3 * c["eval_ms"] * validations * n_val)
        rows.append((r.run_id, seconds))
    total = sum(s for _, s in rows)
    wall = schedule([s for _, s in rows], args.workers)
    print(f"\n{'point':<46} {'predicted s':>12}")
    for run_id, s in rows:
        print(f"{run_id:<46} {s:>12.0f}")
    print(f"\n{len(rows)} points, {total:.0f} CPU s in total; longest point {max(s for _, s in rows):.0f} s")
    print(f"predicted wall time with {args.workers} workers: {wall / 60:.1f} min")
    print(f"RATIO predicted wall / {BUDGET_S / 60:.0f}-minute budget: {wall / BUDGET_S:.2f}")
    print(f"RATIO parallel efficiency (CPU s / (workers x wall)): {total / (args.workers * wall):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
