"""Training throughput of the real training loop, per architecture and size.

Runs `matscale.train.train` for a few epochs on EMT structures generated here (fcc alloys of
4–32 atoms, labelled by ASE's EMT), and reads the loop's own metrics: throughput is taken
between the first and the last validation, so set-up (normalisation fit, FLOP measurement,
first-epoch warm-up) is excluded while the per-epoch validation of 4 structures and the
checkpoint writes are included. Prints structures/s, atoms/s, achieved FLOP/s (FlopCounterMode
counts) and each line's atoms/s relative to the first line (the baseline, measured in the same
run). The models' own bench (`bench/bench_models.py`) compares packed and padded transformers.

    python bench/bench_train.py                      # default ladder, ~1-2 min on 2 cores
    python bench/bench_train.py --only fcn:s transformer:m --epochs 5 --threads 2
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np
import torch

DEFAULT = ["fcn:xs", "fcn:s", "fcn:m", "transformer:xs", "transformer:s", "transformer:m", "schnet:xs",
           "schnet:s", "equiformer_v2:xxs", "esen:xs", "escaip:xs"]


def emt_structures(n: int, seed: int = 0):
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    metals = ("Cu", "Al", "Ni", "Ag", "Au", "Pd", "Pt")
    out = []
    for i in range(n):
        reps = [(1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2)][int(rng.integers(4))]
        a = bulk(metals[i % len(metals)], "fcc", a=4.0, cubic=True).repeat(reps)
        a.set_chemical_symbols([metals[int(rng.integers(len(metals)))] if rng.random() < 0.3 else s
                                for s in a.get_chemical_symbols()])
        a.positions += 0.08 * rng.standard_normal(a.positions.shape)
        a.calc = EMT()
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        out.append(a)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", default=None, help="arch:size pairs (default: a ladder of all models)")
    p.add_argument("--structures", type=int, default=64, help="training structures (default 64)")
    p.add_argument("--batch-size", type=int, default=16, help="structures per step (default 16)")
    p.add_argument("--epochs", type=int, default=3, help="epochs; throughput is timed after the first (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    from matscale import models
    from matscale.config import TrainConfig
    from matscale.train.loop import train

    data = emt_structures(args.structures, seed=0)
    val = emt_structures(4, seed=1)
    atoms_per_structure = np.mean([len(a) for a in data])
    print(f"{len(data)} EMT structures, {atoms_per_structure:.1f} atoms each on average; batch {args.batch_size}; "
          f"{args.threads} thread(s) on {args.device}")
    print(f"{'model':<20}{'params':>10}{'structures/s':>14}{'atoms/s':>11}{'GFLOP/s':>10}{'vs first':>10}")
    first = None
    with tempfile.TemporaryDirectory() as root:
        for item in args.only or DEFAULT:
            arch, _, size = item.partition(":")
            try:
                spec = models.spec(arch)
            except Exception as exc:
                print(f"{item:<20} unavailable: {exc}")
                continue
            if not spec.trainable:
                continue
            cfg = TrainConfig(arch=arch, size=size or None, epochs=args.epochs, batch_size=args.batch_size,
                              device=args.device, run_root=root, val_every=1)
            t0 = time.perf_counter()
            result = train(cfg, train_set=data, val_set=val, quiet=True)
            m = result.metrics
            a, b = m.iloc[0], m.iloc[-1]
            dt = b["wall_s"] - a["wall_s"]
            sps = (b["samples_seen"] - a["samples_seen"]) / dt
            aps = (b["atoms_seen"] - a["atoms_seen"]) / dt
            gflops = (b["flops"] - a["flops"]) / dt / 1e9
            first = first or aps
            print(f"{arch + '-' + cfg.validate().size:<20}{result.summary['params_total']:>10,}{sps:>14.1f}{aps:>11.0f}"
                  f"{gflops:>10.3f}{aps / first:>9.2f}x   ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
