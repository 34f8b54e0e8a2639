"""The sweep record `<root>/_sweeps/<name>.csv`, safe when several sweeps share one file.

Two sweeps of the same file used to rewrite the record in turn, the last writer winning
(a point the other one completed could end up recorded as failed). `write_record` takes an
flock on `<name>.csv.lock`, reads what is there, replaces the rows of the run ids this
sweep reports and keeps the rows of its other points (run by another sweep, or not reached yet), then
rewrites the file atomically. A finished outcome is never replaced by a failure that only
says the point was busy or stopped elsewhere.
"""
from __future__ import annotations

import fcntl
import io
import os
from pathlib import Path

import pandas as pd

from matscale.runs import FINISHED, atomic_write_text

WEAK_ACTIONS = ("busy",)  # outcomes that say nothing about the run itself


def _read(path: Path) -> pd.DataFrame | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        return pd.read_csv(io.StringIO(text)) if text.strip() else None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None  # a damaged record is rebuilt from this sweep's rows


def merge(existing: pd.DataFrame | None, mine: pd.DataFrame, keep=None) -> pd.DataFrame:
    """`mine`'s rows (by run_id), then the rows of `existing` it lacks whose run id is in `keep`
    (this sweep's points not reported yet; None keeps all)."""
    if existing is None or existing.empty or "run_id" not in existing.columns:
        return mine
    old = {r["run_id"]: r for r in existing.to_dict("records")}
    out = []
    for row in mine.to_dict("records"):
        prev = old.get(row["run_id"])
        if prev is not None and row.get("action") in WEAK_ACTIONS and prev.get("status") in FINISHED:
            row = prev  # "busy here" must not overwrite "completed there"
        out.append(row)
    mine_ids = set(mine["run_id"])
    out += [r for r in existing.to_dict("records")
            if r["run_id"] not in mine_ids and (keep is None or r["run_id"] in keep)]
    return pd.DataFrame(out, columns=list(mine.columns))


def write_record(path: str | Path, frame: pd.DataFrame, keep=None) -> pd.DataFrame:
    """Merge `frame` into the record at `path` under a lock and rewrite it atomically; the merged table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_CREAT | os.O_RDWR, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # no flock on this file system: merge anyway (a narrow race remains)
            pass
        merged = merge(_read(path), frame, keep)
        atomic_write_text(path, merged.to_csv(index=False))
        return merged
    finally:
        os.close(fd)
