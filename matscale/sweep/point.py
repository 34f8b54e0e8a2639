"""One sweep point = one training run, executed in a child process for crash isolation.

`run_point(point)` is the single function every executor calls (a local thread pool, or a
SLURM array task through submitit): it re-checks the run folder (finished -> skipped),
runs `python -m matscale train --config <run_root>/_sweeps/points/<run_id>.json` (or papermill
on `book/train.ipynb`) with its output
appended to `<run_root>/_sweeps/logs/<run_id>.log`, and returns a plain dict {run_id, status,
error, wall_s, action, log}. It never raises for a failing run: the failure is the result.
The run's lock (`matscale.locks`, `<run_root>/_locks/<run_id>.lock`, the one `matscale train`
takes) is taken here and handed to the child, so two sweeps (or a sweep and a manual
`train`) never train one run at once; a point whose run is locked elsewhere waits for it.
The child runs in its own process group and dies with the sweep (`matscale.lifeline`).
Logs (and executed notebooks) live outside the run folder because the training loop owns
that folder (it clears it when a run starts over).
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matscale import lifeline, locks
from matscale.errors import ConfigError, MatscaleError
from matscale.runs import FINISHED, RunDir, atomic_write_json, repo_root

BUSY_POLL_S = 1.0  # how often a point whose run is locked elsewhere checks again (s)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
SWEEP_DIR = "_sweeps"  # under the runs root: sweep records, logs, executed notebooks, job files

# child processes started by this process (so an interrupted sweep can stop them)
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Point:
    """What a worker needs to run one point; plain data so submitit can pickle it."""

    config: dict[str, Any]          # TrainConfig.to_dict(), run_root absolute
    run_id: str
    runner: str = "cli"             # "cli" (python -m matscale train) or "papermill"
    threads: int | None = None      # OMP/MKL threads of the run (None: inherit)
    restart_failed: bool = False    # failed runs start over (--force) instead of resuming
    env: dict[str, str] = field(default_factory=dict)  # extra environment (e.g. CUDA_VISIBLE_DEVICES)
    notebook: str | None = None     # papermill input (default: book/train.ipynb)
    notebook_params: tuple[str, ...] = ()  # the notebook's parameters (only these are injected)

    @property
    def run_dir(self) -> Path:
        return Path(self.config["run_root"]) / self.run_id

    @property
    def config_file(self) -> Path:
        return Path(self.config["run_root"]) / SWEEP_DIR / "points" / f"{self.run_id}.json"

    @property
    def log(self) -> Path:
        return Path(self.config["run_root"]) / SWEEP_DIR / "logs" / f"{self.run_id}.log"

    @property
    def notebook_out(self) -> Path:
        return Path(self.config["run_root"]) / SWEEP_DIR / "notebooks" / f"{self.run_id}.ipynb"


def state(run_dir: str | Path) -> tuple[str | None, str | None]:
    """(status, error) from a run folder's summary.json; (None, None) when absent/unreadable."""
    try:
        summary = RunDir(run_dir).read_summary()
    except MatscaleError:
        return None, None
    return (summary or {}).get("status"), (summary or {}).get("error")


def action_for(status: str | None, exists: bool, restart_failed: bool = False) -> str:
    """skip (finished), new (no folder), resume (interrupted or failed) or restart (failed, forced)."""
    if status in FINISHED:
        return "skip"
    if status == "failed" and restart_failed:
        return "restart"
    return "resume" if exists or status is not None else "new"


# -- command lines ------------------------------------------------------------------------------
def write_point_config(point: Point) -> Path:
    """The point's full config as `<run_root>/_sweeps/points/<run_id>.json` (atomic), the file
    its child reads with `python -m matscale train --config` (no settings on the command line)."""
    atomic_write_json(point.config_file, {"run_id": point.run_id, "config": point.config})
    return point.config_file


def default_notebook() -> Path:
    return (repo_root() or Path.cwd()) / "book" / "train.ipynb"


def notebook_parameters(path: str | Path) -> tuple[str, ...]:
    """Names assigned in the notebook's `parameters` cell (papermill overrides exactly these)."""
    import ast

    import nbformat

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"notebook {path} does not exist; pass --notebook or use --runner cli")
    nb = nbformat.read(path, as_version=4)
    cell = next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise ConfigError(f"notebook {path} has no cell tagged 'parameters' for papermill; use --runner cli")
    names: list[str] = []
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return tuple(dict.fromkeys(names))


def command(point: Point, action: str) -> list[str]:
    """The child command line for `point` (train CLI or papermill).

    The notebook runner has no restart: the notebook resumes what it finds (`train(...,
    resume=True)`), so `action` only matters for the CLI."""
    if point.runner == "papermill":
        nb = Path(point.notebook) if point.notebook else default_notebook()
        out = point.notebook_out
        cmd = [sys.executable, "-m", "papermill", str(nb), str(out), "--kernel", "python3",
               "--cwd", str(nb.parent), "--no-progress-bar"]
        for name in point.notebook_params:
            if name in point.config:
                cmd += ["-y", json.dumps({name: point.config[name]})]  # JSON is YAML: types survive
        return cmd
    cmd = [sys.executable, "-m", "matscale", "train", "--config", str(point.config_file), "--quiet"]
    if action == "resume":
        cmd.append("--resume")
    elif action == "restart":
        cmd.append("--force")
    return cmd


def child_env(point: Point) -> dict[str, str]:
    env = dict(os.environ)
    if point.threads is not None:
        env.update({k: str(point.threads) for k in THREAD_VARS})
    env.update(point.env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    root = repo_root()
    if root is not None:  # the child imports this checkout's matscale, wherever it runs from
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


# -- running ------------------------------------------------------------------------------------
def run_point(point: Point, stop: threading.Event | None = None) -> dict[str, Any]:
    """Run one point to the end; returns {run_id, status, error, wall_s, action, log}.

    stop: once set (by `stop_children`), the point is no longer started. When another
    process (a concurrent sweep, a `matscale train`) holds the run's lock, this waits for it
    and then re-reads the run: usually it finished there and is reported as such."""
    root = point.config["run_root"]
    waited = False
    while True:
        try:
            fd, _ = locks.acquire(root, point.run_id)
            break
        except locks.RunBusyError:
            waited = True
            if stop is None:
                time.sleep(BUSY_POLL_S)
            elif stop.wait(BUSY_POLL_S):
                return {"run_id": point.run_id, "status": "failed", "action": "busy", "wall_s": 0.0, "log": None,
                        "error": "the sweep was stopped while another process was running this point"}
    held = {"fd": fd}
    try:
        result = _run_locked(point, held, stop)
    finally:
        if held["fd"] is not None:
            locks.release(held["fd"])
    if waited and result["action"] == "skip":
        result["action"] = "waited"  # finished by the other process while we waited
    return result


def _run_locked(point: Point, held: dict, stop: threading.Event | None) -> dict[str, Any]:
    run_dir = point.run_dir
    status, _ = state(run_dir)  # again: it may have finished since the sweep was planned
    action = action_for(status, run_dir.exists(), point.restart_failed)
    if action == "skip":
        return {"run_id": point.run_id, "status": status, "error": None, "wall_s": 0.0,
                "action": "skip", "log": None}
    log = point.log
    log.parent.mkdir(parents=True, exist_ok=True)
    if point.runner == "papermill":
        point.notebook_out.parent.mkdir(parents=True, exist_ok=True)
    else:
        write_point_config(point)
    cmd = command(point, action)
    t0, started = time.perf_counter(), time.time()
    with open(log, "a") as fh:
        fh.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {action}: {shlex.join(cmd)}\n")
        fh.flush()
        offset = fh.tell()
        with _LIVE_LOCK:
            if stop is not None and stop.is_set():
                return _result(point, "failed", "the sweep was stopped before this point started", t0, action, log)
            try:
                # own process group (stop_children signals the whole tree); the CLI child inherits the
                # run lock (held even if this process dies first) and dies with this process (lifeline:
                # PR_SET_PDEATHSIG + a watchdog). A notebook's kernel is a grandchild that cannot inherit
                # the descriptor: the lock is handed over by releasing it, and the kernel's train() takes it.
                env = {**child_env(point), lifeline.PARENT_ENV: str(os.getpid())}
                fds: tuple[int, ...] = ()
                if point.runner == "papermill":
                    locks.release(held["fd"])
                    held["fd"] = None
                else:
                    env.update(locks.inherit_env(held["fd"]))
                    fds = (held["fd"],)
                proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, cwd=str(repo_root() or Path.cwd()), pass_fds=fds,
                                        process_group=0)
            except OSError as exc:
                return _result(point, "failed", f"could not start {cmd[0]}: {exc}", t0, action, log)
            _LIVE.add(proc)
        try:
            rc = proc.wait()
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    status, error = state(run_dir)
    summary = RunDir(run_dir).summary_path
    fresh = summary.exists() and summary.stat().st_mtime >= started - 1.0  # written by this attempt
    if rc == 0 and status in FINISHED:
        return _result(point, status, None, t0, action, log)
    if rc == 0 and status is None:
        error = f"the run exited normally but wrote no summary.json in {run_dir} (did it train other settings?)"
    elif rc == 0:
        error = f"the run exited normally but its summary.json says status {status!r}"
    elif not (fresh and status == "failed" and error):
        error = _error_from_log(log, offset, rc)
    return _result(point, "failed", error, t0, action, log)


def _result(point: Point, status: str, error: str | None, t0: float, action: str, log: Path) -> dict[str, Any]:
    return {"run_id": point.run_id, "status": status, "error": error, "wall_s": time.perf_counter() - t0,
            "action": action, "log": str(log)}


def _error_from_log(log: Path, offset: int, rc: int) -> str:
    """This attempt's `error: ...` line, else its last output line, plus how it ended."""
    how = f"killed by {signal.Signals(-rc).name}" if rc < 0 and -rc in signal.valid_signals() else f"exit code {rc}"
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    except OSError:
        lines = []
    chosen = next((ln for ln in reversed(lines) if ln.startswith("error:")), lines[-1] if lines else "")
    chosen = chosen.removeprefix("error:").strip()
    return f"{chosen} ({how})" if chosen else how


def stop_children(sig: int = signal.SIGTERM, stop: threading.Event | None = None) -> int:
    """Set `stop` (no more children start) and send `sig` to the running ones; returns how many."""
    with _LIVE_LOCK:
        if stop is not None:
            stop.set()
        procs = list(_LIVE)
    for proc in procs:
        try:
            os.killpg(proc.pid, sig)  # the child's whole group: DataLoader workers, papermill kernels
        except OSError:
            try:
                proc.send_signal(sig)
            except OSError:
                pass
    return len(procs)
