"""Threads or processes: one 2-thread run against two concurrent 1-thread runs, per architecture.

    .venv/bin/python bench/bench_parallel.py [--archs fcn:s,transformer:s,schnet:xs,equiformer_v2:xxs]
                                             [--seconds 3] [--rounds 1] [--cores 2]

The question a sweep on a CPU machine with C cores faces: give each run C threads and train
one at a time, or run C single-threaded runs side by side? For each architecture:size, worker
processes (this file with --worker) build the model, warm up, meet at a barrier and then run
the real training step (`bench/_common.py`) on default-set batches for a fixed number of steps
(sized from a probe so that one run takes about --seconds): once as ONE process with --cores
threads, once as --cores processes with 1 thread each, alternating, --rounds times. Printed:
steps/s of each layout (wall clock: the machine is what is measured) and the RATIO
processes/threads (> 1: parallel single-threaded runs get more training done per second).
The sweep's local executor uses the conclusion (`threads_per_run: auto`, see
`matscale.sweep.executors.LocalExecutor`). On a shared machine the wall clock is noisy.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(arch: str, size: str, steps: int, threads: int, barrier: Path, count: int, out: Path) -> None:
    import torch

    torch.set_num_threads(threads)
    from _common import default_structures, make_trainer
    from matscale.models import build, graph_cache

    structures = default_structures(64, seed=4)
    batches = [structures[i:i + 16] for i in range(0, 64, 16)]
    torch.manual_seed(0)
    step = make_trainer(build(arch, size), structures, "cpu")
    with graph_cache.use(graph_cache.GraphCache(64 * 2**20)):
        for b in batches:
            step(b)  # warm-up, fills the graph cache
        barrier.joinpath(f"{os.getpid()}").touch()
        while len(list(barrier.iterdir())) < count:  # every worker starts timing together
            time.sleep(0.005)
        t = time.perf_counter()
        for i in range(steps):
            step(batches[i % len(batches)])
        out.write_text(f"{time.perf_counter() - t}")


def launch(arch, size, steps, threads, procs) -> float:
    """Wall seconds until the slowest of `procs` workers finished `steps` steps."""
    with tempfile.TemporaryDirectory() as tmp:
        barrier = Path(tmp) / "barrier"
        barrier.mkdir()
        env = {**os.environ, **{k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
        outs = [Path(tmp) / f"out{k}" for k in range(procs)]
        ps = [subprocess.Popen([sys.executable, __file__, "--worker", arch, size, str(steps), str(threads),
                                str(barrier), str(procs), str(o)], env=env, cwd=HERE) for o in outs]
        for p in ps:
            if p.wait() != 0:
                raise RuntimeError(f"worker for {arch}:{size} failed with exit code {p.returncode}")
        return max(float(o.read_text()) for o in outs)


def probe_steps(arch, size, seconds) -> int:
    t = launch(arch, size, 4, 1, 1)
    return max(4, min(150, int(seconds / (t / 4))))


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--worker":
        a = sys.argv[2:]
        worker(a[0], a[1], int(a[2]), int(a[3]), Path(a[4]), int(a[5]), Path(a[6]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default="fcn:s,transformer:s,schnet:xs,equiformer_v2:xxs")
    p.add_argument("--seconds", type=float, default=3.0, help="target length of one timed run")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--device", default="cpu", help="only cpu: the question is about CPU cores")
    args = p.parse_args(argv)
    if args.device != "cpu":
        print("bench_parallel: threads vs processes is a CPU question; on a GPU the sweep runs one point per GPU")
        return 0
    C = args.cores
    print(f"one run with {C} threads vs {C} concurrent 1-thread runs; wall clock; {args.rounds} rounds, median")
    print(f"{'model':<22}{'threads steps/s':>17}{'processes steps/s':>19}{'RATIO proc/thr':>16}")
    for item in args.archs.split(","):
        arch, _, size = item.partition(":")
        steps = probe_steps(arch, size, args.seconds)
        thr, proc = [], []
        for r in range(args.rounds):
            for layout in (("t", "p") if r % 2 == 0 else ("p", "t")):
                if layout == "t":
                    thr.append(steps / launch(arch, size, steps, C, 1))
                else:
                    proc.append(C * steps / launch(arch, size, steps, 1, C))
        t, q = statistics.median(thr), statistics.median(proc)
        print(f"{item:<22}{t:>17.2f}{q:>19.2f}{q / t:>15.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
