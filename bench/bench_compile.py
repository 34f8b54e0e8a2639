"""torch.compile (inductor) per architecture: compile time against steady-state gain.

    .venv/bin/python bench/bench_compile.py [--archs fcn:s,transformer:m,schnet:xs]
                                            [--steps 6] [--device cpu|cuda]

For each architecture:size, the real training step (`bench/_common.py`) on batches of the
default set, eager and with `matscale.train.compile.compile_model` (what TrainConfig
`compile: true` does): the first compiled steps' extra seconds (compile time, every new
shape signature included) and the steady-state median step of both. Printed: the RATIO
eager/compiled of the steady-state step (> 1: compiled is faster) and the break-even point
(training steps after which compiling has paid for itself). CPU seconds on CPU (inductor
compiles in this process, so the compile time is counted), wall seconds on CUDA.
Conservative models (SchNet) are refused by compile_model (double backward); printed as such.

Measured on the 2-core CPU machine (torch 2.13 inductor, 2026-12-02, shared by 6 jobs):
fcn:s compiles in 6.9 CPU s and then runs 0.90x as fast as eager (never pays); transformer:m
fails inside inductor's generated code for dynamic shapes (NameError: name 's42' is not
defined; reported as a clear MatscaleError); schnet is refused; equiformer_v2:xxs had not
finished compiling after 500 s wall (> 60 CPU s), so it is left out of the defaults (pass
--archs equiformer_v2:xxs to try). On CPU the study therefore keeps compile off; on a GPU
`bench/run_gpu.py` measures it.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

from _common import Clock, add_device_arg, default_structures, make_trainer, setup_device

from matscale.errors import MatscaleError
from matscale.models import build
from matscale.train.compile import compile_model


def bench(arch, size, batches, structures, steps, device) -> None:
    clock = Clock(device)
    label = f"{arch}:{size}"
    torch.manual_seed(0)
    eager_model = build(arch, size)
    eager = make_trainer(eager_model, structures, device)
    torch.manual_seed(0)
    model = build(arch, size)
    try:
        compile_model(model)
    except MatscaleError as exc:
        print(f"{label:<20} not compiled: {exc}")
        return
    compiled = make_trainer(model, structures, device)
    eager(batches[0])
    t = clock()
    try:
        for b in batches:  # first pass: compiles (and recompiles for new dynamic-shape guards)
            compiled(b)
    except Exception as exc:  # noqa: BLE001 - a failing architecture is a result, not a crash
        print(f"{label:<20} compile failed after {clock() - t:.1f} s: {str(exc).splitlines()[0][:400]}")
        return
    first = clock() - t
    te, tc = [], []
    for _ in range(steps):
        for b in batches:
            s = clock(); eager(b); te.append(clock() - s)
            s = clock(); compiled(b); tc.append(clock() - s)
    me, mc = statistics.median(te), statistics.median(tc)
    compile_s = max(first - len(batches) * mc, 0.0)
    gain = me - mc
    even = f"{compile_s / gain:,.0f} steps" if gain > 0 else "never (no steady-state gain)"
    print(f"{label:<20} compile {compile_s:7.1f} s   step eager {me * 1e3:7.1f} ms, compiled {mc * 1e3:7.1f} ms   "
          f"RATIO eager/compiled = {me / mc:.2f}x   break-even after {even}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default="fcn:s,transformer:m,schnet:xs")
    p.add_argument("--batches", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3, help="steady-state rounds over the batches")
    add_device_arg(p)
    args = p.parse_args(argv)
    device = setup_device(args)
    structures = default_structures(args.batches * args.batch_size, seed=2)
    batches = [structures[i:i + args.batch_size] for i in range(0, len(structures), args.batch_size)]
    print(f"torch {torch.__version__}, inductor on {device}; {len(batches)} batches of {args.batch_size} "
          f"default-set structures; {'wall' if Clock(device).wall else 'CPU'} seconds")
    for item in args.archs.split(","):
        arch, _, size = item.partition(":")
        bench(arch, size or None, batches, structures, args.steps, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
