"""The study's points and their results: where the study is, its plan, one row per run.

    study_path(study), repo_root(), plan(study), results(study, runs_root, archs)
    trainable(table), with_role(table, role), baseline_archs(archs), status_table(table), curves(table),
    baselines(table)
    series(table, arch, kind), aggregate(points, x, y, by)   (the one seed average)
    equivariance(table, archs)   the stored rotation errors (measured by `python -m matscale study`)

Runs are found by run id — the id `python -m matscale train` gives the same settings — so
other folders under runs/ never leak into the results, and a planned point that has not run
yet shows up as "missing" instead of vanishing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from matscale.errors import ConfigError, MatscaleError

STUDY_DIR = "book/sweeps"
Y = "val_loss"
AXES = {"params": "params", "data": "n_train"}  # series kind -> x column
SETTING = {"params": "size", "data": "frac"}  # series kind -> the setting that varies along it
AXIS_TITLES = {"params": "non-embedding parameters N", "n_train": "training structures D",
               "flops": "training FLOPs C", "val_loss": "validation loss"}
EXPONENTS = {"power": "alpha", "power_floor": "alpha", "broken": "alpha2", "broken_amp": "alpha2",
             "broken_floor": "alpha2"}
MIN_SEEDS_FOR_WEIGHTS = 3  # the spread of fewer seeds is too noisy to weight a fit with
PHYSICAL = ("val_energy_mae_eV_atom", "val_force_l2mae_eV_A", "val_stress_mae_eV_A3")


# -- where things are --------------------------------------------------------------------------
def repo_root() -> Path:
    """The source checkout (folder with pyproject.toml) holding this package.

    The book executes notebooks with `book/` as working directory, so pages resolve every
    path from here rather than from the current directory.
    """
    from matscale.runs import repo_root as _root

    root = _root()
    if root is None:
        raise ConfigError("matscale is not running from a source checkout (no pyproject.toml next to the "
                          "package); the study pages need the repository (git clone, then make book)")
    return root


def study_path(study: str | Path = "default") -> Path:
    """The sweep file of `study`: a name under book/sweeps/ (default.yaml, ...) or a path."""
    p = Path(study)
    if p.suffix in (".yaml", ".yml", ".toml"):
        path = p if p.is_absolute() else (Path.cwd() / p if (Path.cwd() / p).is_file() else repo_root() / p)
        if not path.is_file():
            raise ConfigError(f"study file {study} does not exist")
        return path
    folder = repo_root() / STUDY_DIR
    for suffix in (".yaml", ".yml", ".toml"):
        if (folder / f"{study}{suffix}").is_file():
            return folder / f"{study}{suffix}"
    have = sorted(q.stem for q in folder.glob("*.*ml")) if folder.is_dir() else []
    raise ConfigError(f"no study {study!r}: expected {folder}/{study}.yaml; studies here: {', '.join(have) or 'none'}")


# -- the study's points and their results ------------------------------------------------------
def plan(study: str | Path = "default") -> pd.DataFrame:
    """The study's points in file order: run_id, arch, size, frac, seed, epochs, max_steps, lr,
    batch_size, val_every, role (the sweep file's tag: "main" for the scaling series, "lr" /
    "budget" for the checks), valid (False for a point whose settings are invalid)."""
    from matscale.sweep import load

    spec = load(study_path(study))
    rows, seen = [], set()
    for i, config in enumerate(spec.configs):
        try:
            resolved, valid = config.validate(check_device=False), True
        except ConfigError:
            resolved, valid = config, False
        run_id = resolved.run_id()
        if run_id in seen:
            continue
        seen.add(run_id)
        rows.append({"run_id": run_id, "arch": resolved.arch, "size": resolved.size, "frac": resolved.frac,
                     "seed": resolved.seed, "epochs": resolved.epochs, "max_steps": resolved.max_steps,
                     "lr": resolved.lr, "batch_size": resolved.batch_size, "val_every": resolved.val_every,
                     "role": spec.role(i), "valid": valid})
    return pd.DataFrame(rows)


_SUMMARY = {"params_non_embedding": "params", "params_total": "params_total", "n_train": "n_train",
            "samples_seen": "samples_seen", "steps": "steps", "flops": "flops", "best_val_loss": "val_loss",
            "final_val_loss": "final_val_loss", "wall_s": "wall_s", "error": "error", "status": "status",
            "trainable": "trainable", **{f"best_{k}": k for k in PHYSICAL}}


def results(study: str | Path = "default", runs_root: str | Path = "runs",
            archs: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per planned point of `study` (restricted to `archs`), with its run's summary.

    `runs_root` is resolved like everywhere in matscale: relative to the repository root.
    """
    from matscale.run_summary import RunSummary
    from matscale.runs import FINISHED, RunDir, live_status, resolve_root

    table = plan(study)
    if archs is not None:
        archs = [archs] if isinstance(archs, str) else list(archs)
        unknown = sorted(set(archs) - set(table["arch"]))
        if unknown:
            raise ConfigError(f"architecture(s) {', '.join(unknown)} are not in study {study!r}; "
                              f"it has {', '.join(pd.unique(table['arch']))}")
        table = table[table["arch"].isin(archs + baseline_archs(table["arch"]))]  # baselines: the floor to beat
    root = resolve_root(runs_root)
    rows = []
    for point in table.to_dict("records"):
        row = dict(point)
        row.update({v: np.nan for v in _SUMMARY.values()})
        row.update(status="missing", error=None, run_dir=str(root / point["run_id"]))
        try:
            raw = RunDir(root / point["run_id"]).read_summary()
            summary = RunSummary.from_dict(raw) if raw is not None else None
        except MatscaleError as exc:  # a half-written or corrupt summary
            summary = RunSummary(status="failed", error=str(exc))
        for key, name in _SUMMARY.items():
            if summary is not None and summary.get(key) is not None:
                row[name] = summary.get(key)
        if not point["valid"]:
            row.update(status="failed", error="invalid settings (see python -m matscale sweep)")
        row["status"] = live_status(root / point["run_id"], row["status"])  # a dead "running" run: interrupted
        rows.append(row)
    out = pd.DataFrame(rows)
    out["finished"] = out["status"].isin(FINISHED)
    for col in ("params", "params_total", "n_train", "samples_seen", "steps", "flops", "val_loss",
                "final_val_loss", "wall_s", *PHYSICAL):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    return out.reset_index(drop=True)


def with_role(table: pd.DataFrame, role: str = "main") -> pd.DataFrame:
    """The rows of one sweep role ("main": the scaling points; "lr", "budget": the checks). A table
    without a `role` column (runs read from elsewhere) is all "main"."""
    if "role" not in table.columns:
        return table if role == "main" else table.iloc[0:0]
    return table[table["role"].fillna("main") == role]


def baseline_archs(archs: Iterable[str]) -> list[str]:
    """The closed-form architectures among `archs` (the registry's `ArchSpec.trainable` False)."""
    from matscale import models

    out = []
    for arch in dict.fromkeys(archs):
        try:
            if not models.spec(arch).trainable:
                out.append(arch)
        except (ConfigError, ImportError):  # an unknown / unavailable arch is no baseline
            pass
    return out


def trainable(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of neural models (closed-form baselines have no parameters and no FLOPs)."""
    return table[~table["trainable"].eq(False) & ~table["arch"].isin(baseline_archs(table["arch"]))]


def status_table(table: pd.DataFrame) -> pd.DataFrame:
    """Points per architecture and status (rows: arch; columns: statuses, total)."""
    counts = table.pivot_table(index="arch", columns="status", values="run_id", aggfunc="count", fill_value=0)
    counts["total"] = counts.sum(axis=1)
    return counts.reindex(pd.unique(table["arch"]))


def curves(table: pd.DataFrame, runs_root: str | Path = "runs") -> pd.DataFrame:
    """Every finished trainable run's metrics rows, with run_id, arch, size, frac, seed, params, n_train."""
    from matscale.runs import RunDir

    keep = ["run_id", "arch", "size", "frac", "seed", "params", "n_train"]
    frames = []
    for row in trainable(table[table["finished"]]).to_dict("records"):
        m = RunDir(row["run_dir"]).read_metrics()
        if len(m):
            for k in reversed(keep):
                m.insert(0, k, row[k])
            frames.append(m)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=keep)


def baselines(table: pd.DataFrame) -> pd.DataFrame:
    """Finished closed-form baseline rows (arch, frac, val_loss and the physical errors)."""
    base = table[table["arch"].isin(baseline_archs(table["arch"])) & table["finished"]]
    return base[["arch", "frac", "n_train", Y, *PHYSICAL]].reset_index(drop=True)


# -- series ---------------------------------------------------------------------------------------
def series(table: pd.DataFrame, arch: str, kind: str, at: str | float | None = None) -> pd.DataFrame:
    """The finished runs of one scaling series of `arch`.

    kind "data": runs at one size, frac varied — by default the size with the most distinct
    fractions (ties: the largest model, the one least limited by its capacity);
    kind "params": runs at one frac, size varied — by default the fraction with the most
    distinct sizes (ties: the largest fraction). `at` picks the size / frac explicitly.
    The result keeps every seed (one row per run) and carries `series_at` (the fixed value).
    """
    if kind not in AXES:
        raise ConfigError(f"kind must be 'data' or 'params', not {kind!r}")
    rows = trainable(table[(table["arch"] == arch) & table["finished"]])
    rows = with_role(rows)  # the checks' extra points (other rates, other budgets) are no series
    rows = rows[np.isfinite(rows[Y]) & (rows[Y] > 0)]
    if rows.empty:
        return rows.assign(series_at=None)
    fixed, varied = ("size", "frac") if kind == "data" else ("frac", "size")
    if at is None:
        groups = rows.groupby(fixed)
        count = groups[varied].nunique()
        tie_break = groups["params"].max() if kind == "data" else pd.Series(count.index, index=count.index)
        ranked = pd.DataFrame({"n": count, "tie": tie_break}).sort_values(["n", "tie"], ascending=False)
        at = ranked.index[0]
    picked = rows[rows[fixed] == at]
    return picked.sort_values([AXES[kind], "seed"]).assign(series_at=at).reset_index(drop=True)


def aggregate(points: pd.DataFrame, x: str, y: str = Y, by: str | None = None) -> pd.DataFrame:
    """Mean, sample std (NaN for one seed) and count of `y` per point, sorted by x.

    A point is a distinct value of the setting `by` (e.g. "frac": the seeds of one fraction
    draw slightly different numbers of structures, 306 and 307, yet are one point), its x the
    mean of `x` over its runs; without `by`, a point is a distinct value of `x`.
    """
    if by is None or by == x:
        g = points.groupby(x, sort=True)[y]
        return g.agg(mean="mean", std=lambda s: s.std(ddof=1) if len(s) > 1 else np.nan, n="count").reset_index()
    g = points.groupby(by, sort=False)
    out = pd.DataFrame({x: g[x].mean(), "mean": g[y].mean(),
                        "std": g[y].agg(lambda s: s.std(ddof=1) if len(s) > 1 else np.nan), "n": g[y].count()})
    return out.sort_values(x).reset_index(drop=True)



# -- equivariance ----------------------------------------------------------------------------------
EQUIVARIANCE_COLUMNS = ("energy_rel", "forces_rel", "stress_rel", "energy_abs", "forces_abs", "stress_abs")


def equivariance(table: pd.DataFrame, archs: Sequence[str] | None = None, n_structures: int = 32,
                 n_rotations: int = 2) -> pd.DataFrame:
    """Rotation-equivariance error of each finished run's best checkpoint, as stored in its
    folder (`equivariance.json`, written by `matscale.train.evaluate.store_equivariance`, which
    `python -m matscale study` runs over a study): the committed study keeps the numbers after
    its checkpoints (git-ignored) are gone. Reading only: the study never runs a model.
    Columns: run_id, arch, size, frac, seed, params, n_train, energy_rel, forces_rel,
    stress_rel (and *_abs), source (cached | unavailable: no matching measurement stored).
    """
    from matscale.runs import read_equivariance

    rows = []
    sel = trainable(table[table["finished"]])
    if archs is not None:
        sel = sel[sel["arch"].isin(list(archs))]
    for r in sel.to_dict("records"):
        row = {k: r[k] for k in ("run_id", "arch", "size", "frac", "seed", "params", "n_train")}
        data = read_equivariance(r["run_dir"], n_structures, n_rotations)
        if data:
            row.update({k: data.get(k, np.nan) for k in EQUIVARIANCE_COLUMNS})
        row["source"] = "cached" if data else "unavailable"
        rows.append(row)
    return pd.DataFrame(rows)
