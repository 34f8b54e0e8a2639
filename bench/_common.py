"""Shared helpers of the engine benches (not a bench itself: `make bench` runs bench_*.py).

- `default_structures(n)`: n labelled training structures of the default set ($MATSCALE_DATA,
  else `matscale.data.ensure_default()`), a fixed random draw, decoded once;
- `train_step(...)`: the real training step — collate, OMat24 loss, backward, gradient clip,
  AdamW — with `torch.profiler.record_function` labels data / forward / backward / optimizer
  (the neighbour list is labelled radius_graph inside `matscale.models.graph`);
- `Clock(device)`: CPU seconds of this process on CPU (other helpers' load on a shared machine
  inflates them far less than wall time) and synchronised wall seconds on CUDA;
- `pick_size(arch, target)`: the ladder size nearest a parameter count (peer comparisons);
- `interleaved(variants, rounds)`: median seconds of each variant, variants alternating within
  every round so drifting machine load hits all alike.
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np
import torch

from matscale.data.batch import collate


def pick_size(arch: str, target: float) -> tuple[str, int]:
    """The ladder size whose non-embedding parameter count is closest to `target` (log scale);
    the OMat24 reference sizes (omat24_*) are left out: they are not part of a ladder."""
    import math

    from matscale.models import build, count_parameters, sizes

    best = None
    for size in sizes(arch):
        if size.startswith("omat24"):
            continue
        torch.manual_seed(0)
        n = count_parameters(build(arch, size))[1]
        gap = abs(math.log(max(n, 1) / target))
        if best is None or gap < best[2]:
            best = (size, n, gap)
        if n > 3 * target:
            break
    return best[0], best[1]


def add_device_arg(p) -> None:
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (the benches run unchanged on a GPU)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (CPU)")


def setup_device(args) -> str:
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA device is visible here")
    return args.device


def default_root() -> str:
    root = os.environ.get("MATSCALE_DATA")
    if root:
        return root
    from matscale.data import ensure_default

    return str(ensure_default())


def default_structures(n: int, split: str = "train", seed: int = 0) -> list:
    """n labelled structures of the default set's `split`, a fixed random draw (decoded)."""
    from matscale.data import open_split

    ds = open_split(root=default_root(), split=split, frac=1.0, seed=0, cache=False)
    idx = np.sort(np.random.default_rng(seed).choice(len(ds), size=min(n, len(ds)), replace=False))
    return [ds[int(i)] for i in idx]


class Clock:
    """Seconds: process CPU time on CPU, synchronised wall time on CUDA."""

    def __init__(self, device: str, wall: bool = False) -> None:
        self.cuda = str(device).startswith("cuda")
        self.wall = wall or self.cuda

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter() if self.wall else time.process_time()


def loss_parts(structures):
    """(weights, scales, normalisation) of the real loss for these structures."""
    from matscale.config import TrainConfig
    from matscale.train.loss import LossWeights
    from matscale.train.normalization import fit_normalization

    norm = fit_normalization(structures)
    return LossWeights.from_config(TrainConfig()), norm.loss_scales(), norm


def make_trainer(model, structures, device: str, lr: float = 1e-3):
    """A `step(atoms_list)` closure doing one real training step of `model` (normalised first)."""
    from matscale.train.loss import loss

    weights, scales, norm = loss_parts(structures)
    norm.apply(model)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)

    def step(atoms_list, forward=None):
        rf = torch.profiler.record_function
        with rf("data"):
            batch = collate(atoms_list, labels=True).to(device)
        with rf("forward"):
            pred = (forward or model)(batch)
            total, _ = loss(pred, batch, weights, scales)
        with rf("backward"):
            total.backward()
        with rf("optimizer"):
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return float(total.detach())

    return step


def interleaved(variants: dict, rounds: int, clock: Clock) -> dict[str, float]:
    """Median seconds of each callable in `variants` over `rounds` alternating rounds."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for k in order:
            t = clock()
            variants[k]()
            times[k].append(clock() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def profile_breakdown(fn, steps: int, labels=("data", "radius_graph", "forward", "backward", "optimizer")) -> dict:
    """ms per step spent under each record_function label (forward excludes radius_graph)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            fn()
    tot = {e.key: e.cpu_time_total / 1e3 / steps for e in prof.key_averages() if e.key in labels}
    out = {k: tot.get(k, 0.0) for k in labels}
    out["forward"] = max(out["forward"] - out["radius_graph"], 0.0)
    return out
