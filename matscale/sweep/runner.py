"""`run_sweep`: plan the points (skip finished runs), run the rest, record every outcome.

Each point's run id comes from its validated config (the id `python -m matscale train`
gives the same settings), so a re-run of a sweep skips finished points (completed or
stopped early), resumes interrupted ones and retries failed ones. A point whose settings are
invalid (e.g. a size its architecture does not have) is recorded as failed with the reason
and never started; no point's failure stops the others.

The outcome table is returned as a DataFrame and kept (atomically rewritten after every
point, merged with what concurrent sweeps of the same name recorded: `record.py`) in
`<root>/_sweeps/<name>.csv`, so a killed sweep leaves a record of what it did;
each point's output is in `<root>/_sweeps/logs/<run_id>.log`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from matscale.config import TrainConfig
from matscale.errors import ConfigError
from matscale.lifeline import terminate_as_interrupt
from matscale.membership import record as record_study
from matscale.runs import resolve_root
from matscale.sweep.record import write_record
from matscale.sweep.executors import LocalExecutor, SlurmExecutor, visible_gpus
from matscale.sweep.point import (SWEEP_DIR, Point, action_for, default_notebook, notebook_parameters, run_point,
                                  state)
from matscale.sweep.progress import Progress
from matscale.sweep.spec import InvalidPoint

COLUMNS = ("run_id", "arch", "size", "frac", "seed", "lr", "action", "status", "error", "wall_s", "run_dir", "log")
RECORD_DIR = SWEEP_DIR


def plan(configs: Sequence[TrainConfig], root: str | Path | None = None, runner: str = "cli",
         restart_failed: bool = False, notebook: str | Path | None = None,
         invalid: Sequence[InvalidPoint] = (),
         ) -> tuple[list[Point], list[dict[str, Any]]]:
    """(points to run, rows of points not to run: finished ones skipped, invalid ones failed).

    invalid: points the sweep file could not read (`SweepSpec.invalid`), recorded as failed."""
    nb_params: tuple[str, ...] = ()
    if runner == "papermill":
        notebook = str(notebook or default_notebook())
        nb_params = notebook_parameters(notebook)
        check_notebook_can_run(configs, nb_params, notebook)
        if restart_failed:
            raise ConfigError("--restart-failed needs --runner cli (the notebook resumes what it finds)")
    elif runner != "cli":
        raise ConfigError(f"runner must be cli or papermill, got {runner!r}")
    points: list[Point] = []
    rows: list[dict[str, Any]] = [_invalid_row(p, root) for p in invalid]
    seen: set[str] = set()
    for config in configs:
        if root is not None:
            config = config.replace(run_root=str(root))
        config = config.replace(run_root=str(resolve_root(config.run_root)))
        try:
            resolved = config.validate(check_device=False)
        except ConfigError as exc:
            run_id = config.run_id()
            if run_id not in seen:
                seen.add(run_id)
                rows.append(_row(config, run_id, action="invalid", status="failed", error=str(exc)))
            continue
        run_id = resolved.run_id()
        if run_id in seen:  # e.g. size unset and size = the default: one run
            continue
        seen.add(run_id)
        run_dir = Path(resolved.run_root) / run_id
        status, _ = state(run_dir)
        action = action_for(status, run_dir.exists(), restart_failed)
        if action == "skip":
            rows.append(_row(resolved, run_id, action="skip", status=status))
        else:
            points.append(Point(config=resolved.to_dict(), run_id=run_id, runner=runner,
                                restart_failed=restart_failed, notebook=notebook if nb_params else None,
                                notebook_params=nb_params))
    return points, rows


def check_notebook_can_run(configs: Sequence[TrainConfig], params: Sequence[str], notebook: str) -> None:
    """ConfigError when a point sets something the notebook cannot be told (not a parameter)."""
    defaults = TrainConfig()
    for config in configs:
        extra = sorted(f for f in TrainConfig.field_names()
                       if f not in params and f != "size" and getattr(config, f) != getattr(defaults, f))
        if "size" not in params and config.size is not None:
            extra.append("size")
        if extra:
            raise ConfigError(f"{notebook} has no parameter for {', '.join(extra)} (its parameters: "
                              f"{', '.join(params)}); use --runner cli or add them to its parameters cell")


def _invalid_row(point: InvalidPoint, root) -> dict[str, Any]:
    """The record of a point whose settings could not be read (no run id: it has no valid config)."""
    s = point.settings
    digest = hashlib.sha256(json.dumps(s, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return {"run_id": f"invalid-{digest}", "arch": s.get("arch"), "size": s.get("size"), "frac": s.get("frac"),
            "seed": s.get("seed"), "lr": s.get("lr"), "action": "invalid", "status": "failed",
            "error": point.error, "wall_s": 0.0, "run_dir": None, "log": None}


def _row(config: TrainConfig, run_id: str, **values) -> dict[str, Any]:
    row = {"run_id": run_id, "arch": config.arch, "size": config.size, "frac": config.frac, "seed": config.seed,
           "lr": config.lr, "action": None, "status": None, "error": None, "wall_s": 0.0,
           "run_dir": str(Path(config.run_root) / run_id), "log": None}
    row.update(values)
    return row


def make_executor(executor: str | LocalExecutor | SlurmExecutor = "local", *, max_parallel: int | None = None,
                  threads_per_run: int | None = None, slurm: dict[str, Any] | None = None,
                  uses_gpu: bool = False):
    """An executor object from its name and settings (an executor object passes through)."""
    if isinstance(executor, (LocalExecutor, SlurmExecutor)):
        return executor
    if executor == "local":
        return LocalExecutor(max_parallel, threads_per_run, gpus=visible_gpus() if uses_gpu else None)
    if executor == "slurm":
        settings = dict(slurm or {})
        if max_parallel is not None:
            settings["array_parallelism"] = max_parallel
        if threads_per_run is not None and threads_per_run != "auto":
            settings.setdefault("cpus_per_task", threads_per_run)
        return SlurmExecutor(settings)
    raise ConfigError(f"executor must be local or slurm, got {executor!r}")


def run_sweep(configs: Sequence[TrainConfig], executor: str | LocalExecutor | SlurmExecutor = "local", *,
              max_parallel: int | None = None, threads_per_run: int | None = None, root: str | Path | None = None,
              runner: str = "cli", notebook: str | Path | None = None, slurm: dict[str, Any] | None = None,
              restart_failed: bool = False, progress: bool = True, name: str = "sweep",
              run_fn: Callable[[Point], dict[str, Any]] = run_point,
              invalid: Sequence[InvalidPoint] = ()) -> pd.DataFrame:
    """Run every point not yet finished; one row per point (see `COLUMNS`).

    executor: "local" (process pool on this machine), "slurm" (submitit array job; `slurm`
    holds its settings, including cluster="local"/"debug" to run off-cluster) or an executor.
    root: runs folder (default: each config's run_root). runner: "cli" (`python -m matscale
    train`) or "papermill" (execute `notebook`, default book/train.ipynb, whose parameters
    cell must cover every setting the points change). run_fn: the per-point function
    (tests inject fakes; the default runs `python -m matscale train`).
    """
    configs = list(configs)
    points, rows = plan(configs, root, runner, restart_failed, notebook, invalid=invalid)
    uses_gpu = any(p.config["device"] != "cpu" for p in points)
    ex = make_executor(executor, max_parallel=max_parallel, threads_per_run=threads_per_run, slurm=slurm,
                       uses_gpu=uses_gpu)
    valid_rows = [r for r in rows if r["run_dir"]]
    run_root = Path(points[0].config["run_root"]) if points else (
        Path(valid_rows[0]["run_dir"]).parent if valid_rows else resolve_root(root))
    record = run_root / RECORD_DIR / f"{name}.csv"
    record_study(run_root, name, [p.run_id for p in points] + [r["run_id"] for r in rows if r["action"] != "invalid"])
    if isinstance(ex, SlurmExecutor):
        ex.folder = ex.folder or run_root / RECORD_DIR / f"{name}-submitit"
        ex.parameters.setdefault("name", f"matscale-{name}")

    order = {p.run_id: i for i, p in enumerate(points)}
    keep = set(order) | {r["run_id"] for r in rows}  # rows of this sweep's points that others recorded
    by_id = {p.run_id: p for p in points}
    results: dict[str, dict[str, Any]] = {}
    bar = Progress(total=len(rows) + len(points), skipped=sum(r["action"] == "skip" for r in rows),
                   parallel=ex.parallel, enabled=progress, name=name)

    def frame() -> pd.DataFrame:
        ran = [_row(TrainConfig.from_dict(by_id[i].config), i, **results[i]) for i in sorted(results, key=order.get)]
        return pd.DataFrame(rows + ran, columns=list(COLUMNS))

    def on_result(result: dict[str, Any]) -> None:
        results[result["run_id"]] = {k: result.get(k) for k in ("action", "status", "error", "wall_s", "log")}
        bar.update(result)
        write_record(record, frame(), keep)

    bar.note(f"{name}: {len(configs)} point(s), {len(points)} to run, "
             f"{bar.skipped} already finished; {ex.describe()}")
    for r in rows:
        if r["action"] == "invalid":
            bar.update(r)
    write_record(record, frame(), keep)
    try:
        with terminate_as_interrupt():  # executors stop their children / cancel their jobs
            ex.run(points, on_result, run_fn=run_fn)
    finally:
        bar.close()
    return frame()
