"""Per-structure cost of short real training runs (`python -m matscale train`), for the sweep file's cost table.

    .venv/bin/python bench/cost_runs.py [--compare /path/to/other/checkout] [--rounds 1]
                                        [--points schnet:xs:4,equiformer_v2:xxs:2,transformer:s:6]

Each point arch:size:epochs trains on frac 0.01 of the default set (307 structures) with the
default study's settings (batch 16, lr 3e-3, val_frac 0.05), single-threaded, in a fresh
process: CPU ms per training structure seen (the child's user+system time over samples_seen,
so other load on a shared machine inflates it little) and wall ms. With --compare, the same
runs of another checkout (e.g. /work/main before a speed-up) alternate with this one's, and
the RATIO other/this is printed (> 1: this checkout is cheaper).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(checkout: Path, arch: str, size: str, epochs: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "matscale", "train", "--arch", arch, "--size", size, "--frac", "0.01",
               "--epochs", str(epochs), "--batch-size", "16", "--lr", "3e-3", "--val-frac", "0.05",
               "--device", "cpu", "--run-root", tmp, "--quiet"]
        env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=checkout)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        summary = json.loads(next(Path(tmp).glob("*/summary.json")).read_text())
        n = summary["samples_seen"]
        return 1e3 * cpu / n, 1e3 * summary["wall_s"] / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--points", default="schnet:xs:4,equiformer_v2:xxs:2,transformer:s:6")
    p.add_argument("--compare", default=None, help="another checkout to time alternately")
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args(argv)
    checkouts = {"this": ROOT}
    if args.compare:
        checkouts = {"other": Path(args.compare).resolve(), "this": ROOT}
    print(f"{'point':<24}" + "".join(f"{k + ' cpu ms':>14}{k + ' wall ms':>15}" for k in checkouts)
          + ("   RATIO other/this (cpu)" if args.compare else ""))
    for item in args.points.split(","):
        arch, size, epochs = item.split(":")
        res = {k: [] for k in checkouts}
        for r in range(args.rounds):
            for k in (list(checkouts) if r % 2 == 0 else list(reversed(checkouts))):
                res[k].append(run(checkouts[k], arch, size, int(epochs)))
        med = {k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for k, v in res.items()}
        line = f"{arch + ':' + size + ' x' + epochs:<24}" + "".join(f"{c:>14.1f}{w:>15.1f}" for c, w in med.values())
        if args.compare:
            line += f"   {med['other'][0] / med['this'][0]:.2f}x"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
