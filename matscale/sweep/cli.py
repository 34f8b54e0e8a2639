"""`python -m matscale sweep FILE [--executor local|slurm] [--max-parallel K] ...`

Command-line options override the sweep file's `executor`, `runner`, `local:` and `slurm:`
settings; `--set key=value` overrides its `base`. Exit code 0 when every point finished,
1 when any point failed (all others still ran), 2 for a bad sweep file or option.
"""
from __future__ import annotations

import argparse
import sys

import yaml

from matscale.errors import ConfigError
from matscale.sweep import spec as specmod
from matscale.sweep.executors import CLUSTERS
from matscale.sweep.point import action_for, state
from matscale.sweep.progress import summary_table
from matscale.sweep.runner import make_executor, plan, run_sweep



def _threads(value: str):
    """--threads-per-run: a whole number or auto."""
    return value if value == "auto" else int(value)

def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip().replace("-", "_"), yaml.safe_load(value) if value.strip() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m matscale sweep",
        description="Run a grid of training runs defined in a YAML/TOML sweep file (see book/sweeps/). "
                    "Finished points are skipped, interrupted ones resumed, failed ones retried.")
    p.add_argument("file", help="sweep file (.yaml, .yml or .toml)")
    p.add_argument("--executor", choices=specmod.EXECUTORS, default=None,
                   help="local process pool or SLURM array job (default: the file's `executor`, else local)")
    p.add_argument("--max-parallel", type=int, default=None, metavar="K",
                   help="runs at a time (local: default cores // threads-per-run, or one per GPU; "
                        "slurm: the array's parallelism)")
    p.add_argument("--threads-per-run", type=_threads, default=None, metavar="T",
                   help="OMP/MKL threads of each run, or auto (local: one per run, cores shared when fewer "
                        "points remain; default: cores // max-parallel; slurm default: cpus-per-task)")
    p.add_argument("--runner", choices=specmod.RUNNERS, default=None,
                   help="cli: `python -m matscale train` (default); papermill: execute book/train.ipynb")
    p.add_argument("--notebook", default=None,
                   help="papermill runner's notebook (default: the file's `notebook`, else book/train.ipynb)")
    p.add_argument("--root", default=None, help="runs folder (default: the file's run_root, else runs/)")
    p.add_argument("--set", dest="overrides", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="override a base training setting, e.g. --set epochs=1 (repeatable)")
    p.add_argument("--restart-failed", action="store_true",
                   help="start failed points over (default: resume them from their last checkpoint)")
    p.add_argument("--dry-run", action="store_true", help="list the points and what would happen; run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or per-point lines")
    s = p.add_argument_group("slurm (override the sweep file's slurm: section)")
    s.add_argument("--slurm-cluster", choices=CLUSTERS, default=None,
                   help="submitit cluster: slurm (default), or local/debug to run the same code path here")
    s.add_argument("--partition", default=None, help="SLURM partition")
    s.add_argument("--time", type=int, default=None, metavar="MIN", help="time limit per point in minutes (default 60)")
    s.add_argument("--gpus-per-node", type=int, default=None, metavar="G", help="GPUs per point")
    s.add_argument("--cpus-per-task", type=int, default=None, metavar="C", help="CPU cores per point")
    s.add_argument("--mem-gb", type=float, default=None, metavar="GB", help="memory per point in GB")
    s.add_argument("--slurm-folder", default=None, help="folder for submitit's job files and logs")
    s.add_argument("--slurm-param", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="any other submitit slurm parameter, e.g. account=abc, qos=high, constraint=a100")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sweep = specmod.load(args.file, overrides=dict(args.overrides))
    executor = args.executor or sweep.executor
    runner = args.runner or sweep.runner
    notebook = args.notebook or sweep.notebook
    max_parallel = args.max_parallel if args.max_parallel is not None else sweep.local.get("max_parallel")
    threads = args.threads_per_run if args.threads_per_run is not None else sweep.local.get("threads_per_run")
    if executor == "slurm":
        max_parallel = args.max_parallel  # the file's local: section does not apply to SLURM
        threads = args.threads_per_run
    for label, value in (("--max-parallel", max_parallel), ("--threads-per-run", threads)):
        if value is not None and value != "auto" and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{label} must be >= 1{' or auto' if 'threads' in label else ''}, got {value}")
    slurm = dict(sweep.slurm)
    cli_slurm = {"cluster": args.slurm_cluster, "partition": args.partition, "time": args.time,
                 "gpus_per_node": args.gpus_per_node, "cpus_per_task": args.cpus_per_task,
                 "mem_gb": args.mem_gb, "folder": args.slurm_folder, **dict(args.slurm_param)}
    slurm.update({k: v for k, v in cli_slurm.items() if v is not None})

    if args.dry_run:
        points, rows = plan(sweep.configs, args.root, runner, args.restart_failed, notebook, invalid=sweep.invalid)
        ex = make_executor(executor, max_parallel=max_parallel, threads_per_run=threads, slurm=slurm)
        print(f"{sweep.name}: {len(points) + len(rows)} point(s); {ex.describe()}")
        for r in rows:
            print(f"  {r['action']:<8} {r['run_id']}" + (f"  ({r['error']})" if r["error"] else ""))
        for pt in points:
            action = action_for(state(pt.run_dir)[0], pt.run_dir.exists(), args.restart_failed)
            print(f"  {action:<8} {pt.run_id}")
        return 1 if any(r["status"] == "failed" for r in rows) else 0

    frame = run_sweep(sweep.configs, executor, max_parallel=max_parallel, threads_per_run=threads, root=args.root,
                      runner=runner, notebook=notebook, slurm=slurm, restart_failed=args.restart_failed,
                      progress=not args.no_progress, name=sweep.name, invalid=sweep.invalid)
    print(summary_table(frame))
    return 1 if (frame["status"] == "failed").any() else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
