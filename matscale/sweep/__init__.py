"""Sweeps: a grid of training runs (architecture × size × frac × seed × lr) from one file.

    python -m matscale sweep book/sweeps/tiny.yaml [--executor local|slurm] [--max-parallel K]

    from matscale.sweep import expand, load, run_sweep
    configs = expand("book/sweeps/tiny.yaml")        # or expand({"base": ..., "grid": ...})
    frame = run_sweep(configs, executor="local", max_parallel=2)  # run_id, status, error, wall_s, ...

Modules: `spec` (sweep files -> TrainConfigs), `point` (one point = one child training run),
`executors` (local pool, SLURM via submitit), `progress` (bar, ETA, final table),
`runner` (plan, skip finished, record outcomes), `cli` (the command).
"""
from __future__ import annotations

from matscale.sweep.cli import main
from matscale.sweep.executors import LocalExecutor, SlurmExecutor
from matscale.sweep.point import Point, run_point, write_point_config
from matscale.sweep.runner import plan, run_sweep
from matscale.sweep.spec import SweepSpec, expand, load

__all__ = ["main", "expand", "load", "run_sweep", "plan", "SweepSpec", "Point", "run_point", "write_point_config",
           "LocalExecutor", "SlurmExecutor"]
