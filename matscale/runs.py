"""The runs/ folder: one folder per training run, written atomically, read as DataFrames.

    runs/<run_id>/config.json    {"run_id", "config": full resolved TrainConfig, "versions", "git"}
    runs/<run_id>/metrics.csv    one row per validation: epoch, step, samples_seen, atoms_seen,
                                 flops, wall_s, lr, train_* and val_* losses and MAEs
    runs/<run_id>/summary.json   status (running|completed|failed|stopped_early), params,
                                 best/final val, FLOPs, error message when failed
    runs/<run_id>/checkpoints/   last.pt, best.pt (git-ignored)
    runs/<run_id>/vis/           parity data written every `vis_every` epochs (optional)

    load(root) -> DataFrame, one row per run (study + summary + config columns)
    metrics(run, root) -> DataFrame of one run's metrics.csv
    all_metrics(root) -> every run's metrics rows with a run_id column
    archive(run_ids, root) -> moves run folders to root/_archive/<UTC time>/
    runs/<run_id>/equivariance.json  rotation errors of the best checkpoint (read_equivariance)
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from matscale.errors import MatscaleError

STATUSES = ("running", "completed", "failed", "stopped_early")
FINISHED = ("completed", "stopped_early")


# -- atomic writes ----------------------------------------------------------------------------
def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same folder + os.replace (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600: shared run folders must stay readable
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # a failed write(): name the file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (/proc), else set and restored."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_orphan_temps(folder: str | Path) -> list[Path]:
    """Delete `.<name>.*.tmp` files an atomic write left behind when its process was killed.

    Call only while holding the run's lock (`matscale.locks`): then no live writer owns them."""
    removed = []
    for p in Path(folder).rglob(".*.tmp"):
        try:
            if p.is_file():
                p.unlink()
                removed.append(p)
        except OSError:
            pass
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# -- where runs live --------------------------------------------------------------------------
def repo_root() -> Path | None:
    """The source checkout holding this package (editable install), if any."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").exists() else None


def resolve_root(root: str | Path | None = "runs") -> Path:
    """Absolute runs root: relative paths are taken from the repository root (so the book and
    the CLI agree whatever the working directory), else from the working directory."""
    root = Path("runs" if root is None else root).expanduser()
    if root.is_absolute():
        return root
    base = repo_root() or Path.cwd()
    return (base / root).resolve()


def run_dir(run: str | Path, root: str | Path | None = "runs") -> Path:
    """A run folder from its path or its id under `root`."""
    p = Path(run)
    if (p / "config.json").exists() or (p / "summary.json").exists():
        return p
    q = resolve_root(root) / str(run)
    if q.exists():
        return q
    raise MatscaleError(f"no run folder {run!r} (looked at {p} and {q}); list runs with matscale.runs.load()")


# -- provenance -------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("matscale", "torch", "numpy", "ase", "fairchem-core", "e3nn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def git_info() -> dict[str, Any]:
    """Commit of the source checkout and whether it had uncommitted changes (None outside git)."""
    root = repo_root()
    if root is None:
        return {"commit": None, "dirty": None}

    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


# -- one run ------------------------------------------------------------------------------------
class RunDir:
    """Paths and readers/writers of one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    metrics_path = property(lambda self: self.path / "metrics.csv")
    summary_path = property(lambda self: self.path / "summary.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    vis = property(lambda self: self.path / "vis")
    run_id = property(lambda self: self.path.name)

    def exists(self) -> bool:
        return self.summary_path.exists() or self.config_path.exists()

    def write_config(self, config: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        atomic_write_json(self.config_path, {"run_id": self.run_id, "config": config,
                                             "versions": versions(), "git": git_info(), **(extra or {})})

    def read_config(self) -> dict[str, Any]:
        return _read_json(self.config_path)

    def write_summary(self, summary: dict[str, Any]) -> None:
        if summary.get("status") not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {summary.get('status')!r}")
        atomic_write_json(self.summary_path, {"run_id": self.run_id, **summary})

    def read_summary(self) -> dict[str, Any] | None:
        return _read_json(self.summary_path) if self.summary_path.exists() else None

    def write_metrics(self, rows: Iterable[dict[str, Any]]) -> None:
        """Rewrite metrics.csv with all rows (columns: union in first-seen order)."""
        rows = list(rows)
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in columns})
        atomic_write_text(self.metrics_path, buf.getvalue())

    def read_metrics(self) -> pd.DataFrame:
        if not self.metrics_path.exists() or self.metrics_path.stat().st_size == 0:
            return pd.DataFrame()
        return pd.read_csv(self.metrics_path)


def _csv_value(v):
    if isinstance(v, float):
        return repr(v)  # full precision, round-trips exactly
    return v


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise MatscaleError(f"{path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise MatscaleError(f"{path} is not valid JSON ({exc}); delete the run folder or re-run with --force") from exc


# -- all runs -----------------------------------------------------------------------------------
def run_dirs(root: str | Path | None = "runs") -> list[Path]:
    base = resolve_root(root)
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and (p / "summary.json").exists())


def live_status(path: str | Path, recorded: str | None) -> str | None:
    """The status to show: 'interrupted' for a run whose summary says running but whose lock
    (`matscale.locks`) no process holds (its process died without writing an outcome)."""
    if recorded != "running":
        return recorded
    from matscale import locks

    path = Path(path)
    return "running" if locks.status(path.parent, path.name) is not None else "interrupted"


def corrupt_runs(root: str | Path | None = "runs") -> list[tuple[Path, str]]:
    """(run folder, reason) of every run whose summary.json or config.json cannot be read."""
    bad = []
    for path in run_dirs(root):
        run = RunDir(path)
        try:
            run.read_summary()
            if run.config_path.exists():
                run.read_config()
        except MatscaleError as exc:
            bad.append((path, str(exc)))
    return bad


def load(root: str | Path | None = "runs") -> pd.DataFrame:
    """One row per run: run_id, run_dir, study (the studies whose sweep planned it, comma-separated;
    see `matscale.membership`), the resolved config's fields and the summary's fields.

    `status` is the live status (`live_status`: a dead process's 'running' run shows as
    'interrupted'; the summary's own value stays in `recorded_status`). Runs whose files are
    corrupt are left out with a warning naming them; `df.attrs["corrupt"]` lists their folders.
    """
    from matscale.membership import studies

    member = studies(root)
    rows, corrupt = [], []
    for path in run_dirs(root):
        run = RunDir(path)
        try:
            summary = run.read_summary() or {}
            cfg = run.read_config() if run.config_path.exists() else {}
        except MatscaleError:
            corrupt.append(str(path))  # writes are atomic: an unreadable file is damaged, not half-written
            continue
        row = {"run_id": path.name, "run_dir": str(path), "study": ",".join(member.get(path.name, [])) or None}
        row.update({k: (",".join(v) if isinstance(v, list) else v) for k, v in cfg.get("config", {}).items()})
        row.update({k: v for k, v in summary.items() if not isinstance(v, (dict, list))})
        row["git_commit"] = (cfg.get("git") or {}).get("commit")
        row["recorded_status"] = summary.get("status")
        row["status"] = live_status(path, summary.get("status"))
        rows.append(row)
    if corrupt:
        import warnings

        warnings.warn(f"{len(corrupt)} run(s) skipped: unreadable summary.json or config.json in "
                      f"{', '.join(corrupt)}; delete those folders or re-run them with --force", stacklevel=2)
    df = pd.DataFrame(rows)
    df.attrs["corrupt"] = corrupt
    return df


def metrics(run: str | Path, root: str | Path | None = "runs") -> pd.DataFrame:
    """The metrics table of one run (a path or a run id under `root`)."""
    return RunDir(run_dir(run, root)).read_metrics()


def all_metrics(root: str | Path | None = "runs") -> pd.DataFrame:
    """Every run's metrics rows stacked, with a run_id column first."""
    frames = []
    for path in run_dirs(root):
        df = RunDir(path).read_metrics()
        if len(df):
            df.insert(0, "run_id", path.name)
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


EQUIVARIANCE_FILE = "equivariance.json"  # written by train.evaluate.store_equivariance


def read_equivariance(run_dir: str | Path, n_structures: int = 32, n_rotations: int = 2) -> dict | None:
    """A run's stored rotation errors of its best checkpoint, if measured with these settings."""
    try:
        data = json.loads((Path(run_dir) / EQUIVARIANCE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or (data.get("n_structures_requested"), data.get("n_rotations")) != (
            n_structures, n_rotations):
        return None
    return data


def archive(run_ids: Iterable[str], root: str | Path | None = "runs") -> list[Path]:
    """Move the folders of `run_ids` that exist under `root` to `root/_archive/<UTC time>/`
    (one rename each, nothing deleted; `load` and the study pages never look into _archive).
    `make study` archives a study's runs this way so the study reruns from scratch."""
    import datetime

    base = resolve_root(root)
    present = [base / r for r in run_ids if (base / r).is_dir()]
    if not present:
        return []
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = base / "_archive" / stamp
    dest.mkdir(parents=True, exist_ok=False)
    moved = []
    for path in present:
        os.replace(path, dest / path.name)  # same file system: a rename, atomic per folder
        moved.append(dest / path.name)
    return moved
