"""Which runs belong to which study: `<runs root>/_studies/<study>.json`, written by the sweep.

A study is a sweep file (its `name`, default the file's stem); a run belongs to every study
whose sweep planned it, so one run can be in several studies (the default study and a
learning-rate scan share points), and the study never enters the run id. Each sweep rewrites
its study's file with the run ids it planned (finished, skipped or to run), so the file
always describes the sweep file as it is now. The files are small and committed with runs/.

    record(root, "default", run_ids)       after planning a sweep
    studies(root) -> {run_id: ["default", ...]}
    members(root, "default") -> [run_id, ...]
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

from matscale.errors import ConfigError
from matscale.runs import atomic_write_json, resolve_root

STUDIES_DIR = "_studies"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def study_file(root: str | Path | None, name: str) -> Path:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"study name {name!r} must be a plain name (letters, digits, '_', '.', '-')")
    return resolve_root(root) / STUDIES_DIR / f"{name}.json"


def record(root: str | Path | None, name: str, run_ids: Iterable[str]) -> Path:
    """Write the run ids of study `name` (sorted, unique) under `root`; returns the file."""
    path = study_file(root, name)
    atomic_write_json(path, {"study": name, "run_ids": sorted(set(run_ids))})
    return path


def names(root: str | Path | None = "runs") -> list[str]:
    folder = resolve_root(root) / STUDIES_DIR
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def members(root: str | Path | None, name: str) -> list[str]:
    """The run ids of study `name`; ConfigError listing the known studies when it has no record."""
    path = study_file(root, name)
    if not path.is_file():
        known = names(root)
        raise ConfigError(f"no study {name!r} under {resolve_root(root)} (known: {', '.join(known) or 'none'}); "
                          f"running its sweep (python -m matscale sweep book/sweeps/{name}.yaml) records it")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); re-run the study's sweep to rewrite it") from exc
    return list(data.get("run_ids", []))


def studies(root: str | Path | None = "runs") -> dict[str, list[str]]:
    """{run_id: [study, ...]} over every recorded study (unreadable records are skipped)."""
    out: dict[str, list[str]] = {}
    for name in names(root):
        try:
            ids = members(root, name)
        except ConfigError:
            continue
        for run_id in ids:
            out.setdefault(run_id, []).append(name)
    return out
