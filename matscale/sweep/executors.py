"""Where sweep points run: a local pool of child processes, or SLURM array jobs via submitit.

Both executors call the same per-point function (`point.run_point`) and report each result
through `on_result(result_dict)` as soon as it is known, so progress and the sweep record
update live. A failing point is a result, never an exception; only an interrupt (Ctrl-C,
SIGTERM) stops an executor, which then stops its children / cancels its jobs and re-raises.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import inspect
import os
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from matscale.errors import ConfigError
from matscale.sweep.point import Point, run_point, stop_children

OnResult = Callable[[dict[str, Any]], None]
RunFn = Callable[[Point], dict[str, Any]]


def available_cpus() -> int:
    """CPU cores this process may use (affinity / cgroup-aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def visible_gpus() -> list[str]:
    """CUDA device ids a child may be given (honours an existing CUDA_VISIBLE_DEVICES)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # pragma: no cover - a broken CUDA set-up means no GPUs for us
        return []


def _failure(point: Point, error: str, wall_s: float = 0.0) -> dict[str, Any]:
    return {"run_id": point.run_id, "status": "failed", "error": error, "wall_s": wall_s, "action": "error",
            "log": None}


# -- local ----------------------------------------------------------------------------------------
AUTO = "auto"


def auto_layout(cpus: int, points: int, max_parallel: int | None = None) -> tuple[int, int]:
    """(runs at a time, threads per run) for `threads_per_run: auto` on a CPU machine.

    The rule comes from bench/bench_parallel.py (2 cores, every architecture): C concurrent
    single-threaded runs train more per second than one run with C threads, so use one thread
    per run while there are at least as many points as cores, and share the cores among the
    points when fewer remain (a lone point gets them all).
    """
    parallel = max(1, min(max_parallel or cpus, cpus, max(points, 1)))
    return parallel, max(1, cpus // parallel)


class LocalExecutor:
    """A pool of `parallel` concurrent child runs on this machine.

    Defaults size the pool to the machine: one run per visible GPU when the points use a GPU,
    else cores // threads_per_run runs of `threads_per_run` OMP/MKL threads each (so parallel
    runs never oversubscribe the cores). With GPUs each slot gets its own CUDA_VISIBLE_DEVICES.
    threads_per_run "auto": `auto_layout` picks runs and threads from the cores and the number
    of points when the sweep starts.
    """

    name = "local"

    def __init__(self, max_parallel: int | None = None, threads_per_run: int | str | None = None,
                 gpus: Sequence[str] | None = None) -> None:
        self.auto = threads_per_run == AUTO
        if self.auto:
            threads_per_run = None
        for label, value in (("max_parallel", max_parallel), ("threads_per_run", threads_per_run)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{label} must be a whole number >= 1{' or auto' if label != 'max_parallel' else ''}, "
                                  f"got {value!r}")
        cpus = available_cpus()
        self.gpus = list(gpus or [])
        self.max_parallel = max_parallel
        if max_parallel is None:
            max_parallel = len(self.gpus) if self.gpus else max(1, cpus // (threads_per_run or 1))
        self.parallel = max_parallel
        self.threads = threads_per_run or max(1, cpus // max_parallel)

    def describe(self) -> str:
        gpus = f", GPUs {','.join(self.gpus)}" if self.gpus else ""
        auto = " (threads_per_run auto: one thread per run, cores shared when fewer points remain)" \
            if self.auto and not self.gpus else ""
        return f"local: {self.parallel} run(s) at a time, {self.threads} thread(s) each{gpus}{auto}"

    def run(self, points: Sequence[Point], on_result: OnResult, run_fn: RunFn = run_point) -> None:
        if self.auto and not self.gpus:
            self.parallel, self.threads = auto_layout(available_cpus(), len(points), self.max_parallel)
        slots: queue.Queue[int] = queue.Queue()
        for slot in range(self.parallel):
            slots.put(slot)
        stop = threading.Event()
        takes_stop = "stop" in inspect.signature(run_fn).parameters

        def work(point: Point) -> dict[str, Any]:
            slot = slots.get()
            try:
                if stop.is_set():
                    return _failure(point, "the sweep was stopped before this point started")
                env = dict(point.env)
                if self.gpus:
                    env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
                point = dataclasses.replace(point, threads=self.threads, env=env)
                return run_fn(point, stop=stop) if takes_stop else run_fn(point)
            finally:
                slots.put(slot)

        pool = cf.ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="sweep")
        futures = {pool.submit(work, p): p for p in points}
        try:
            pending = set(futures)
            while pending:
                finished, pending = cf.wait(pending, timeout=1.0, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    try:
                        result = fut.result()
                    except Exception as exc:  # a bug in run_fn must not stop the other points
                        result = _failure(futures[fut], f"{type(exc).__name__}: {exc}")
                    on_result(result)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            stop_children(signal.SIGTERM, stop)
            raise
        pool.shutdown(wait=True)


# -- SLURM (submitit) -------------------------------------------------------------------------------
# sweep-file / CLI name -> submitit AutoExecutor parameter; any other key k becomes slurm_k
SLURM_KEYS = {
    "partition": "slurm_partition",
    "time": "timeout_min",              # minutes
    "gpus_per_node": "gpus_per_node",
    "cpus_per_task": "cpus_per_task",
    "mem_gb": "mem_gb",
    "array_parallelism": "slurm_array_parallelism",
    "name": "name",
    "additional_parameters": "slurm_additional_parameters",
}
CLUSTERS = ("slurm", "local", "debug")
DEFAULT_TIME_MIN = 60


def submitit_parameters(settings: dict[str, Any]) -> dict[str, Any]:
    """`update_parameters` kwargs from the sweep's slurm settings (cluster/folder/poll_s excluded)."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key in ("cluster", "folder", "poll_s") or value is None:
            continue
        target = SLURM_KEYS.get(key, key if key.startswith("slurm_") else f"slurm_{key}")
        if target in ("timeout_min", "gpus_per_node", "cpus_per_task", "slurm_array_parallelism"):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if "gpus" in target else 1):
                raise ConfigError(f"slurm {key} must be a whole number{' >= 0' if 'gpus' in target else ' >= 1'}"
                                  f"{' (minutes)' if key == 'time' else ''}, got {value!r}")
        if target == "mem_gb" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ConfigError(f"slurm mem_gb must be a positive number of GB, got {value!r}")
        out[target] = value
    out.setdefault("timeout_min", DEFAULT_TIME_MIN)
    return out


class SlurmExecutor:
    """One SLURM array job (one task per point) through `submitit.AutoExecutor`.

    `cluster="local"` / `"debug"` run the very same submission through submitit's local
    (child processes) / debug (in-process) executors: that is how it is tested off-cluster.
    Settings: partition, time (minutes, default 60), gpus_per_node, cpus_per_task, mem_gb,
    array_parallelism, name, additional_parameters {sbatch option: value}, and any other
    submitit slurm parameter by its name (account, qos, constraint, exclude, setup, ...).
    """

    name = "slurm"

    def __init__(self, settings: dict[str, Any] | None = None, cluster: str | None = None,
                 folder: str | Path | None = None, poll_s: float | None = None) -> None:
        settings = dict(settings or {})
        self.cluster = cluster or settings.get("cluster") or "slurm"
        if self.cluster not in CLUSTERS:
            raise ConfigError(f"slurm cluster must be one of {', '.join(CLUSTERS)}, got {self.cluster!r}")
        self.folder = folder or settings.get("folder")
        self.poll_s = poll_s or settings.get("poll_s") or (15.0 if self.cluster == "slurm" else 0.5)
        self.parameters = submitit_parameters(settings)
        cpus = self.parameters.get("cpus_per_task")
        self.threads = cpus if isinstance(cpus, int) else None
        self.parallel = self.parameters.get("slurm_array_parallelism") or 256

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.parameters.items()))
        return f"slurm ({self.cluster}): {shown}; job files in {self.folder or '<root>/_sweeps/<name>-submitit'}"

    def executor(self, folder: str | Path):
        """The configured `submitit.AutoExecutor` (ConfigError for parameters submitit rejects)."""
        import submitit

        try:
            ex = submitit.AutoExecutor(folder=str(folder), cluster=self.cluster)
        except RuntimeError as exc:  # e.g. no srun: not on a SLURM login node
            raise ConfigError(f"cannot submit to SLURM here ({exc}); run on the cluster's login node, or use "
                              "--slurm-cluster local to run the same jobs on this machine") from exc
        try:
            ex.update_parameters(**self.parameters)
        except (NameError, AssertionError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"slurm settings rejected by submitit: {first}") from exc
        return ex

    def run(self, points: Sequence[Point], on_result: OnResult, run_fn: RunFn = run_point) -> None:
        if not points:
            return
        if self.folder is None:
            raise ConfigError("the slurm executor needs a folder for its job files (slurm.folder)")
        ex = self.executor(self.folder)
        points = [dataclasses.replace(p, threads=self.threads) if self.threads else p for p in points]
        jobs = ex.map_array(run_fn, points)
        pending = dict(zip(jobs, points))
        try:
            while pending:
                for job in list(pending):
                    if job.done():
                        point = pending.pop(job)
                        on_result(_job_result(job, point))
                if pending:
                    time.sleep(self.poll_s)
        except BaseException:
            for job in pending:
                try:
                    job.cancel(check=False)
                except Exception:  # noqa: BLE001 - best effort: the cluster may already be gone
                    pass
            raise


def _job_result(job, point: Point) -> dict[str, Any]:
    """A finished job's result dict, or a failure naming why the task itself died."""
    try:
        return job.result()
    except Exception as exc:  # the task died (timeout, OOM, node failure): not run_point's doing
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        reason = lines[-1] if lines else type(exc).__name__
        return _failure(point, f"job {job.job_id} failed: {reason} (logs: {job.paths.stderr})")
