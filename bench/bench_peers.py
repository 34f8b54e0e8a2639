"""Our graph models against fairchem-core's eSEN and EScAIP, in one run on the same batches.

    .venv/bin/python bench/bench_peers.py [--params 5e4] [--batches 2] [--batch-size 16]
                                          [--rounds 3] [--device cpu|cuda]

For schnet, equiformer_v2 (ours) and esen, escaip (fairchem-core 2.24, `matscale.models.
fairchem_peers`), the ladder size whose non-embedding parameter count N is closest (log) to
--params; each runs the real training step (`bench/_common.py`: collate, OMat24 loss,
backward, clip, AdamW; graph cache on for all) over the same default-set batches, models
alternating within each of --rounds rounds. Printed per model: N, structures/s, seconds per
1,000 structures, FLOPs per step — matmul (FlopCounterMode) and gather/scatter (the rule in
`matscale.train.flops`) —, achieved GFLOP/s, and the RATIO of its throughput to eSEN's
(> 1: faster than eSEN at matched size). Then our EquiformerV2's analytic matmul FLOP count
(`matscale.models.equiformer_v2.flops`) against the measured one on the same batch.
"""
from __future__ import annotations

import argparse
import sys

import torch

from _common import (Clock, add_device_arg, default_structures, interleaved, loss_parts, make_trainer, pick_size,
                     setup_device)

from matscale.data.batch import collate
from matscale.models import build, graph_cache
from matscale.train.flops import step_flops_breakdown
from matscale.train.loss import loss

MODELS = ["schnet", "equiformer_v2", "esen", "escaip"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--params", type=float, default=5e4, help="target non-embedding parameter count")
    p.add_argument("--archs", default=",".join(MODELS))
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    add_device_arg(p)
    args = p.parse_args(argv)
    device = setup_device(args)
    structures = default_structures(args.batches * args.batch_size, seed=3)
    batches = [structures[i:i + args.batch_size] for i in range(0, len(structures), args.batch_size)]
    n_struct = len(structures)
    clock = Clock(device)
    cache = graph_cache.GraphCache(256 * 2**20)
    epochs, info = {}, {}
    for arch in args.archs.split(","):
        try:
            size, n = pick_size(arch, args.params)
            torch.manual_seed(0)
            model = build(arch, size)
            step = make_trainer(model, structures, device)
            probe = collate(batches[0], labels=True).to(device)
            weights, scales, _ = loss_parts(structures)
            fl = step_flops_breakdown(model, probe, lambda m, b: loss(m(b), b, weights, scales)[0])

            def epoch(step=step):
                with graph_cache.use(cache):
                    for b in batches:
                        step(b)
            epoch()  # warm-up (fills the graph cache, first-call allocations)
        except Exception as exc:  # noqa: BLE001 - an unavailable peer is reported, not fatal
            print(f"{arch:14s} skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            continue
        epochs[f"{arch}:{size}"] = epoch
        info[f"{arch}:{size}"] = (n, fl, model)
    t = interleaved(epochs, args.rounds, clock)
    unit = "wall" if clock.wall else "CPU"
    print(f"{n_struct} default-set training structures in {len(batches)} batches of {args.batch_size}; device {device}; "
          f"{unit} seconds, median of {args.rounds} interleaved rounds; FLOPs of the first batch's step")
    print(f"{'model':<22}{'N':>9}{'struct/s':>10}{'s/1k str':>10}{'GFLOP mm':>10}{'GFLOP idx':>10}"
          f"{'GFLOP/s':>9}{'vs eSEN':>9}")
    esen = next((k for k in t if k.startswith("esen")), None)
    for key, sec in t.items():
        n, fl, _ = info[key]
        sps = n_struct / sec
        rel = f"{t[esen] / sec:8.2f}x" if esen else "       -"
        gflops = (fl["matmul"] + fl["indexing"]) * len(batches) / sec / 1e9
        print(f"{key:<22}{n:>9,}{sps:>10.1f}{1000 / sps:>10.1f}{fl['matmul'] / 1e9:>10.3f}{fl['indexing'] / 1e9:>10.4f}"
              f"{gflops:>9.2f}{rel}")
    for key in (k for k in t if k.startswith("equiformer_v2")):
        from matscale.models.equiformer_v2.flops import train_step_flops

        n, fl, model = info[key]
        probe = collate(batches[0], labels=True).to(device)
        E = int(model.edge_context(probe).source.shape[0])
        a = train_step_flops(model, E, probe.num_atoms)
        print(f"{key}: analytic matmul FLOPs of the first batch's step (E = {E}, N = {probe.num_atoms}) "
              f"{a['total'] / 1e9:.3f} GFLOP (forward {a['forward'] / 1e9:.3f}); FlopCounterMode "
              f"{fl['matmul'] / 1e9:.3f}; RATIO analytic/measured = {a['total'] / fl['matmul']:.3f} "
              "(the rest: edge readout, energy and stress heads, not modelled)")
    print("FLOP rule: matmul 2 per multiply-add; gather 1 per element written, scatter-add 1 per source element "
          "(matscale.train.flops)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
