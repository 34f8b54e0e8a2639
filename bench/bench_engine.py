"""Where a training step's time goes, and what the radius-graph cache saves.

    .venv/bin/python bench/bench_engine.py [--archs schnet:xs,equiformer_v2:xxs] [--structures 96]
                                           [--batch-size 16] [--rounds 5] [--device cpu|cuda]

On structures of the default set (the real training split, $MATSCALE_DATA), for each
architecture:size, "epochs" of the real training step (collate, OMat24 loss, backward,
gradient clip, AdamW; `bench/_common.py`) over the same batches, with the graph cache
(`matscale.models.graph_cache`) off and on — the cache warmed by one epoch first, as every
epoch after the first is in training — alternating within each of --rounds rounds. Printed:
median CPU seconds per epoch and the RATIO off/on (> 1: the cache is faster), and a profiler
breakdown (torch.profiler, ms per step) of data (collate), graph (radius_graph), forward
(without the graph), backward and optimiser, with the cache off and on.
"""
from __future__ import annotations

import argparse
import sys

import torch

from _common import Clock, add_device_arg, default_structures, interleaved, make_trainer, profile_breakdown, setup_device

from matscale.models import build, count_parameters, graph_cache


def bench(arch: str, size: str, structures, batch_size: int, rounds: int, device: str) -> float:
    batches = [structures[i:i + batch_size] for i in range(0, len(structures), batch_size)]
    clock = Clock(device)
    steps, caches = {}, {"off": None, "on": graph_cache.GraphCache(512 * 2**20)}
    for mode in ("off", "on"):
        torch.manual_seed(0)
        model = build(arch, size)
        step = make_trainer(model, structures, device)

        def epoch(step=step, cache=caches[mode]):
            with graph_cache.use(cache):
                for b in batches:
                    step(b)
        epoch()  # warm-up; fills the cache
        steps[mode] = epoch
    n = count_parameters(build(arch, size))[1]
    t = interleaved(steps, rounds, clock)
    ratio = t["off"] / t["on"]
    unit = "wall" if clock.wall else "CPU"
    print(f"{arch}:{size} (N = {n:,}), {len(batches)} batches of {batch_size}: {unit} s/epoch cache off "
          f"{t['off']:.3f}, on {t['on']:.3f}; RATIO cache off/on = {ratio:.2f}x "
          f"(hit rate {caches['on'].stats.hit_rate:.0%}, {caches['on'].nbytes / 2**20:.2f} MiB)")
    print(f"  profile, ms/step:   {'data':>7}{'graph':>7}{'forward':>9}{'backward':>9}{'optim':>7}{'total':>8}")
    for mode in ("off", "on"):
        it = iter(batches * 100)
        torch.manual_seed(0)
        model = build(arch, size)
        step = make_trainer(model, structures, device)
        with graph_cache.use(caches[mode]):
            step(batches[0])
            br = profile_breakdown(lambda: step(next(it)), steps=min(len(batches), 4))
        print(f"  cache {mode:<3}           {br['data']:>7.1f}{br['radius_graph']:>7.1f}{br['forward']:>9.1f}"
              f"{br['backward']:>9.1f}{br['optimizer']:>7.1f}{sum(br.values()):>8.1f}", flush=True)
    return ratio


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default="schnet:xs,equiformer_v2:xxs", help="comma-separated arch:size")
    p.add_argument("--structures", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5)
    add_device_arg(p)
    args = p.parse_args(argv)
    device = setup_device(args)
    structures = default_structures(args.structures)
    print(f"{len(structures)} default-set training structures, {sum(len(a) for a in structures)} atoms; "
          f"device {device}, threads {args.threads}")
    for item in args.archs.split(","):
        arch, _, size = item.partition(":")
        bench(arch, size or None, structures, args.batch_size, args.rounds, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
