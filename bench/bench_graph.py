"""Graph models and neighbour lists: training throughput, FLOPs per step, graph build speed.

    .venv/bin/python bench/bench_graph.py [--params 1e5] [--batch-size 8] [--seconds 1.5]
                                          [--archs schnet,esen,...] [--cutoff 5] [--threads 1]

1. For each architecture (schnet, esen, escaip, equiformer_v2, transformer, fcn; any that
   cannot be built is skipped with the reason) the ladder size whose non-embedding parameter
   count is closest (in log) to --params, then one training step — forward, a squared loss on
   energy, forces and stress, backward — on the same batch of embedded-generator parents
   (`matscale.data.parents.build_parent`, rattled): structures/s, atoms/s, and FLOPs per step
   from `torch.utils.flop_counter.FlopCounterMode` (counts matrix products / attention only;
   gather/scatter message passing and elementwise ops are not counted, which flatters
   graph models — see `matscale.train.flops`).
2. Neighbour lists: our `radius_graph` (matscipy per structure) against
   `ase.neighborlist.neighbor_list` on the same structures at the same cutoff, both returning
   the same edges (checked). Printed as a speed RATIO ase_time / our_time (> 1: ours is faster).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import pick_size

from matscale.data.batch import collate
from matscale.models import build
from matscale.models.graph import radius_graph

ARCHS = ["schnet", "esen", "escaip", "equiformer_v2", "transformer", "fcn"]
METALS = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")


def structures(n: int, seed: int = 0) -> list:
    """Rattled parents of the embedded data generator (its size distribution)."""
    from matscale.data.parents import build_parent

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms, _ = build_parent(rng, METALS)
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        out.append(atoms)
    return out


def loss_fn(out, batch) -> torch.Tensor:
    return out["energy"].square().mean() + out["forces"].square().mean() + out["stress"].square().mean()


def train_step(model, batch) -> None:
    model.zero_grad(set_to_none=True)
    loss_fn(model(batch), batch).backward()


def median_time(fn, seconds: float, min_calls: int = 2) -> float:
    fn()  # warm-up
    times, start = [], time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_models(archs, target, batch_atoms, seconds) -> None:
    batch = collate(batch_atoms, labels=False)
    print(f"== training step (forward + loss + backward), batch of {batch.num_structures} structures, "
          f"{batch.num_atoms} atoms, params ≈ {target:.0e} (non-embedding)")
    print(f"{'arch':14s} {'size':6s} {'params N':>10s} {'struct/s':>9s} {'atoms/s':>9s} {'GFLOP/step':>11s} "
          f"{'GFLOP/s':>8s}")
    for arch in archs:
        try:
            size, n = pick_size(arch, target)
            torch.manual_seed(0)
            model = build(arch, size).train()
            with FlopCounterMode(display=False) as counter:
                train_step(model, batch)
            flops = counter.get_total_flops()
            dt = median_time(lambda: train_step(model, batch), seconds)
        except Exception as exc:  # an architecture that is not available yet is reported, not fatal
            print(f"{arch:14s} skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}")
            continue
        print(f"{arch:14s} {size:6s} {n:>10,d} {batch.num_structures / dt:>9.2f} {batch.num_atoms / dt:>9.1f} "
              f"{flops / 1e9:>11.3f} {flops / 1e9 / dt:>8.2f}", flush=True)


def bench_neighbors(atoms_list, cutoff: float, seconds: float) -> None:
    from ase.neighborlist import neighbor_list

    batch = collate(atoms_list, labels=False, dtype=torch.float64)
    graph = radius_graph(batch, cutoff)
    n_ase = sum(len(neighbor_list("i", a, cutoff)) for a in atoms_list)
    assert n_ase == graph.num_edges, (n_ase, graph.num_edges)
    t_ours = median_time(lambda: radius_graph(batch, cutoff), seconds)
    t_ase = median_time(lambda: [neighbor_list("ijS", a, cutoff) for a in atoms_list], seconds)
    print(f"== neighbour list, {len(atoms_list)} structures, {batch.num_atoms} atoms, cutoff {cutoff} Å, "
          f"{graph.num_edges} edges")
    print(f"radius_graph {t_ours * 1e3:8.1f} ms   ase.neighbor_list {t_ase * 1e3:8.1f} ms   "
          f"RATIO ase/ours = {t_ase / t_ours:.1f}x")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=float, default=1e5, help="target non-embedding parameter count")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seconds", type=float, default=1.5, help="timing budget per measurement")
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--cutoff", type=float, default=5.0, help="neighbour-list cutoff, Å")
    p.add_argument("--nl-structures", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    atoms = structures(max(args.batch_size, args.nl_structures), seed=0)
    bench_neighbors(atoms[: args.nl_structures], args.cutoff, args.seconds)
    bench_models([a for a in args.archs.split(",") if a], args.params, atoms[: args.batch_size], args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
