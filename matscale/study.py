"""The scaling study behind the book: its runs, the tables each page needs, and the fits.

A study is a sweep file (`book/sweeps/<study>.yaml`, run with `python -m matscale sweep`).
Its runs are found by run id — the id `python -m matscale train` gives the same settings —
so other folders under runs/ (a notebook's run, a tiny sweep) never leak into the results,
and a planned point that has not run yet shows up as "missing" instead of vanishing.

    study_path(study) -> Path                book/sweeps/<study>.yaml (or a path);  repo_root() -> Path
    plan(study) -> DataFrame                 the study's points (run_id, arch, size, frac, seed, epochs, lr)
    results(study, runs_root, archs) -> DataFrame   one row per point, joined with its summary.json
    status_table(table), baselines(table), trainable(table), curves(table, runs_root)
    series(table, arch, kind) -> DataFrame   the runs of the data ("data") or parameter ("params") series
    scaling(table, kind, archs) -> {arch: SeriesFit}   AICc comparison of the 1-D laws, chosen fit
    fit_series(runs, x, by=) -> SeriesFit;  fit_points(fits), fit_summary(fits), format_estimate(...)
    frontier(table, curves, archs) -> {arch: FrontierFit};  overall_front(curves)
    joint(table, archs) -> {arch: JointFit}  L(N, D) and the compute-optimal allocation;
        allocation(joint fits, budgets), joint_points(runs), joint_slices(joint fit) (for charts)
    extrapolation(scaling fits) -> DataFrame fit without the largest run, predict it, compare
    equivariance(table, archs) -> DataFrame  rotation error of each run's best checkpoint (cached)
    comparison(data, params, frontier, joint fits) -> DataFrame   exponents ± CI side by side;
        exponent_rows(...) (for the chart)
    archive(study, runs_root) -> [Path]      move the study's run folders to runs/_archive/<time>/
    python -m matscale.study [STUDY]         status, and equivariance measured before committing runs/
    python -m matscale.study STUDY --archive the first step of `make study` (rerun from scratch)

Columns of `results`: the point's settings, `status` (completed, stopped_early, failed,
running or missing), `finished`, `params` (non-embedding parameters N), `params_total`,
`n_train` (training structures D), `samples_seen`, `steps`, `flops` (training FLOPs C),
`val_loss` (best validation loss: the loss of the checkpoint a run keeps), `final_val_loss`,
`wall_s`, the best checkpoint's physical errors (`val_energy_mae_eV_atom`,
`val_force_l2mae_eV_A`, `val_stress_mae_eV_A3`) and `error`.

A page asks for a fit and gets either the fit or a `reason` saying why there is none (too
few finished runs, a degenerate series): pages print the reason instead of failing, and
never invent a number.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

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
EQUIVARIANCE_FILE = "equivariance.json"
PHYSICAL = ("val_energy_mae_eV_atom", "val_force_l2mae_eV_A", "val_stress_mae_eV_A3")
BASELINES = ("mean", "linear")  # closed-form architectures: no parameters, no FLOPs


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
    """The study's points in file order: run_id, arch, size, frac, seed, epochs, lr, batch_size,
    val_every, valid (False for a point whose settings are invalid, e.g. an unknown size)."""
    from matscale.sweep import load

    spec = load(study_path(study))
    rows, seen = [], set()
    for config in spec.configs:
        try:
            resolved, valid = config.validate(check_device=False), True
        except ConfigError:
            resolved, valid = config, False
        run_id = resolved.run_id()
        if run_id in seen:
            continue
        seen.add(run_id)
        rows.append({"run_id": run_id, "arch": resolved.arch, "size": resolved.size, "frac": resolved.frac,
                     "seed": resolved.seed, "epochs": resolved.epochs, "lr": resolved.lr,
                     "batch_size": resolved.batch_size, "val_every": resolved.val_every, "valid": valid})
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
    from matscale.runs import FINISHED, RunDir, live_status, resolve_root

    table = plan(study)
    if archs is not None:
        archs = [archs] if isinstance(archs, str) else list(archs)
        unknown = sorted(set(archs) - set(table["arch"]))
        if unknown:
            raise ConfigError(f"architecture(s) {', '.join(unknown)} are not in study {study!r}; "
                              f"it has {', '.join(pd.unique(table['arch']))}")
        table = table[table["arch"].isin(archs + list(BASELINES))]  # baselines stay: the floor to beat
    root = resolve_root(runs_root)
    rows = []
    for point in table.to_dict("records"):
        row = dict(point)
        row.update({v: np.nan for v in _SUMMARY.values()})
        row.update(status="missing", error=None, run_dir=str(root / point["run_id"]))
        try:
            summary = RunDir(root / point["run_id"]).read_summary()
        except MatscaleError as exc:  # a half-written or corrupt summary
            summary = {"status": "failed", "error": str(exc)}
        for key, name in _SUMMARY.items():
            if summary and key in summary and summary[key] is not None:
                row[name] = summary[key]
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


def trainable(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of neural models (closed-form baselines have no parameters and no FLOPs)."""
    return table[~table["trainable"].eq(False) & ~table["arch"].isin(list(BASELINES))]


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
    base = table[table["arch"].isin(list(BASELINES)) & table["finished"]]
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


@dataclass
class SeriesFit:
    """One arch's scaling series and the laws fitted to it.

    `points`: one row per distinct x (mean, std over seeds, n); `runs`: the runs themselves;
    `comparison`: compare_laws' AICc table; `fits`: law -> FitResult (with profile CIs);
    `law`/`fit`: the chosen law (lowest AICc with error bars; `power` when AICc cannot rank);
    `reason`: why there is no fit (then `fit` is None); `notes`: what the reader should know.
    """

    arch: str
    kind: str
    x: str
    at: object
    runs: pd.DataFrame
    points: pd.DataFrame
    comparison: pd.DataFrame | None = None
    fits: dict = field(default_factory=dict)
    law: str | None = None
    fit: object = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fit is not None

    @property
    def exponent(self) -> str | None:
        """Name of the chosen law's exponent at large x (alpha, or alpha2 for broken laws)."""
        return EXPONENTS.get(self.law) if self.law else None

    def span_decades(self) -> float:
        x = self.points[self.x].to_numpy(dtype=float)
        return float(np.log10(x.max() / x.min())) if len(x) > 1 else 0.0


def _fit_kwargs(points: pd.DataFrame) -> tuple[dict, str]:
    """fit_law keywords for a series: weights from seeds when every x has enough of them."""
    if len(points) and points["n"].min() >= MIN_SEEDS_FOR_WEIGHTS and (points["std"] > 0).all():
        return ({"replicates": True},
                f"Each point is the mean of >= {MIN_SEEDS_FOR_WEIGHTS} seeds, weighted by 1/(their std).")
    if len(points) and points["n"].max() > 1:
        return {}, ("Points are means over seeds; with fewer than "
                    f"{MIN_SEEDS_FOR_WEIGHTS} seeds at every point the spread is too noisy to weight the "
                    "fit, so it is shown as error bars only.")
    return {}, "One run per point (no seeds to estimate the spread)."


def fit_series(runs: pd.DataFrame, x: str, y: str = Y, laws: Sequence[str] | None = None, arch: str = "",
               kind: str = "", at=None, by: str | None = None, ci: str = "profile",
               ci_level: float = 0.95) -> SeriesFit:
    """Fit the 1-D laws to a series (one row per run) in log space and rank them by AICc.

    Runs sharing the setting `by` (frac or size) are seeds of one point (see `aggregate`).
    Residuals are taken on ln(loss) (relative errors: a loss that falls over decades is not
    dominated by its largest values). Laws default to every 1-D law whose AICc is defined
    for the number of points (k + 2 <= n).
    """
    from matscale.fit import LAWS, ONE_D_LAWS, compare_laws, fit_law

    points = aggregate(runs, x, y, by) if len(runs) else pd.DataFrame(columns=[x, "mean", "std", "n"])
    out = SeriesFit(arch=arch, kind=kind, x=x, at=at, runs=runs, points=points)
    n = len(points)
    if n < 3:
        out.reason = (f"{n} distinct {AXIS_TITLES.get(x, x)} value(s) with finished runs; a power law needs "
                      "at least 3 to be fitted with error bars")
        return out
    kwargs, note = _fit_kwargs(points)
    out.notes.append(note)
    if "replicates" in kwargs:  # one row per run, seeds of a point sharing the point's x
        shared = runs.groupby(by)[x].transform("mean") if by not in (None, x) else runs[x]
        xs, ys = shared.to_numpy(float), runs[y].to_numpy(float)
    else:
        xs, ys = points[x].to_numpy(float), points["mean"].to_numpy(float)
    if laws is None:
        laws = [name for name in ONE_D_LAWS if LAWS[name].n_params + 2 <= n] or ["power"]
    table, fits = compare_laws(xs, ys, laws=list(laws), return_fits=True, log=True, **kwargs)
    out.comparison = table
    ranked = [r["law"] for r in table.to_dict("records")
              if r["law"] in fits and fits[r["law"]].errorbars and np.isfinite(r["aicc"])]
    if not ranked:
        ranked = [name for name in ("power", *laws) if name in fits and fits[name].errorbars]
        if ranked:
            out.notes.append(f"AICc needs at least k + 2 points for k parameters; with {n} points it ranks no "
                             f"law, so the {ranked[0]} law is used.")
    if not ranked:
        errors = "; ".join(f"{r['law']}: {r['error'] or 'no error bars'}" for r in table.to_dict("records"))
        out.reason = f"no law could be fitted with error bars ({errors})"
        return out
    for name in list(fits):
        try:
            fits[name] = fit_law(xs, ys, name, log=True, ci=ci, ci_level=ci_level, **kwargs)
        except MatscaleError as exc:
            out.notes.append(f"{name}: intervals failed ({exc}).")
    out.fits, out.law = fits, ranked[0]
    out.fit = fits[out.law]
    return out


def scaling(table: pd.DataFrame, kind: str, archs: Sequence[str] | None = None,
            at: Mapping[str, object] | None = None, **kwargs) -> dict[str, SeriesFit]:
    """{arch: SeriesFit} of the data ("data") or parameter ("params") series of each arch."""
    archs = list(archs) if archs is not None else list(pd.unique(trainable(table)["arch"]))
    out = {}
    for arch in archs:
        runs = series(table, arch, kind, at=(at or {}).get(arch))
        fixed = runs["series_at"].iloc[0] if len(runs) else None
        out[arch] = fit_series(runs, AXES[kind], arch=arch, kind=kind, at=fixed, by=SETTING[kind], **kwargs)
    return out


def fit_points(fits: Mapping[str, SeriesFit]) -> pd.DataFrame:
    """All series' points stacked for a chart: arch, x, val_loss (mean), sigma (std, 0 if none), n."""
    frames = []
    for arch, s in fits.items():
        if len(s.points):
            p = s.points.rename(columns={"mean": Y}).assign(arch=arch)
            p["sigma"] = p["std"].fillna(0.0)
            frames.append(p[["arch", s.x, Y, "sigma", "n"]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["arch", Y, "sigma", "n"])


def fit_summary(fits: Mapping[str, SeriesFit]) -> pd.DataFrame:
    """One row per arch: fixed setting, points, span in decades, law, exponent name, its estimate
    as 'value ± stderr [95% CI]' and as numbers, AICc, and the reason when there is no fit."""
    rows = []
    for arch, s in fits.items():
        row = {"arch": arch, "fixed at": s.at, "points": len(s.points),
               "decades": round(s.span_decades(), 2) if len(s.points) > 1 else 0.0}
        if s.ok:
            p = s.fit.params[s.exponent]
            row.update({"law": s.law, "exponent": s.exponent,
                        "estimate": format_estimate(p.value, p.stderr, p.ci_low, p.ci_high),
                        "value": p.value, "stderr": p.stderr, "ci_low": p.ci_low, "ci_high": p.ci_high,
                        "AICc": s.fit.aicc, "note": ""})
        else:
            row.update({"law": None, "exponent": None, "estimate": "—", "value": np.nan, "stderr": np.nan,
                        "ci_low": np.nan, "ci_high": np.nan, "AICc": np.nan, "note": s.reason})
        rows.append(row)
    return pd.DataFrame(rows)


def format_estimate(value, stderr=None, low=None, high=None, digits: int = 3) -> str:
    """'0.312 ± 0.021 [0.27, 0.36]' (missing parts left out; '—' when there is no value)."""
    if value is None or not np.isfinite(value):
        return "—"
    text = f"{value:.{digits}g}"
    if stderr is not None and np.isfinite(stderr):
        text += f" ± {stderr:.2g}"
    if low is not None and high is not None and np.isfinite(low) and np.isfinite(high):
        text += f" [{low:.{digits}g}, {high:.{digits}g}]"
    return text


# -- compute ------------------------------------------------------------------------------------------
@dataclass
class FrontierFit:
    """The compute Pareto front of one arch's runs and L(C) = L_inf + F C^-gamma fitted to it."""

    arch: str
    curves: pd.DataFrame
    front: pd.DataFrame
    fit: object = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.fit is not None


def frontier(table: pd.DataFrame, curve_rows: pd.DataFrame, archs: Sequence[str] | None = None,
             bootstrap: int = 100, seed: int = 0) -> dict[str, FrontierFit]:
    """{arch: FrontierFit}: Pareto front of (FLOPs, val loss) over every validation of every run.

    The front's points are minima over runs, not independent measurements, so the intervals
    come from a bootstrap over whole runs (`bootstrap` resamples).
    """
    from matscale.fit import compute_frontier, fit_frontier

    archs = list(archs) if archs is not None else list(pd.unique(trainable(table)["arch"]))
    out = {}
    for arch in archs:
        c = curve_rows[curve_rows["arch"] == arch] if len(curve_rows) else curve_rows
        c = c[np.isfinite(c["val_loss"]) & (c["flops"] > 0)] if len(c) else c
        if c.empty:
            out[arch] = FrontierFit(arch, c, c, reason="no finished runs with validation rows")
            continue
        front = compute_frontier(c, "flops", "val_loss", "run_id")
        res = FrontierFit(arch, c, front)
        if len(front) < 4:
            res.reason = (f"the Pareto front has {len(front)} point(s); L(C) = L_inf + F C^-gamma needs at "
                          "least 4 to be fitted with error bars")
        else:
            try:
                res.fit = fit_frontier(c, "flops", "val_loss", "run_id", log=True, bootstrap=bootstrap, seed=seed)
                if not res.fit.errorbars:
                    res.reason, res.fit = f"the frontier fit has no error bars: {res.fit.errorbars_note}", None
            except MatscaleError as exc:
                res.reason = f"the frontier fit failed: {exc}"
        out[arch] = res
    return out


def overall_front(curve_rows: pd.DataFrame) -> pd.DataFrame:
    """The Pareto front over all architectures' runs (which arch gives the lowest loss per FLOP)."""
    from matscale.fit import compute_frontier

    c = curve_rows[np.isfinite(curve_rows["val_loss"]) & (curve_rows["flops"] > 0)]
    if c.empty:
        return pd.DataFrame(columns=["flops", "val_loss", "run_id", "arch"])
    front = compute_frontier(c, "flops", "val_loss", "run_id")
    return front.merge(c[["run_id", "arch"]].drop_duplicates(), on="run_id", how="left")


def flops_per_param_sample(runs: pd.DataFrame) -> float:
    """Median training FLOPs per non-embedding parameter per structure seen (the k in C = k N D)."""
    r = runs[(runs["flops"] > 0) & (runs["params"] > 0) & (runs["samples_seen"] > 0)]
    if r.empty:
        return math.nan
    return float(np.median(r["flops"] / (r["params"] * r["samples_seen"])))


@dataclass
class JointFit:
    """L(N, D) = E + A N^-alpha + B D^-beta over all of one arch's runs, and what it implies."""

    arch: str
    runs: pd.DataFrame
    fit: object = None
    optimal: dict | None = None
    k: float = math.nan
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fit is not None


def joint(table: pd.DataFrame, archs: Sequence[str] | None = None, ci: str = "profile") -> dict[str, JointFit]:
    """{arch: JointFit}: the joint law over every finished run of the arch (all sizes × fracs).

    Seeds are averaged per (N, D). The compute-optimal allocation N* ∝ C^a, D* ∝ C^b uses
    C = k N D with k the arch's measured FLOPs per parameter per structure seen (one pass
    over the data, as in Chinchilla's C = 6 N D).
    """
    from matscale.fit import compute_optimal, fit_joint

    archs = list(archs) if archs is not None else list(pd.unique(trainable(table)["arch"]))
    out = {}
    for arch in archs:
        runs = trainable(table[(table["arch"] == arch) & table["finished"]])
        runs = runs[np.isfinite(runs[Y]) & (runs[Y] > 0)]
        res = JointFit(arch, runs, k=flops_per_param_sample(runs))
        pts = joint_points(runs)
        if pts["params"].nunique() < 2 or pts["n_train"].nunique() < 2 or len(pts) < 6:
            res.reason = (f"{len(pts)} distinct (N, D) points with {pts['params'].nunique()} sizes and "
                          f"{pts['n_train'].nunique()} data sizes; the joint law (5 parameters) needs >= 6 "
                          "points with >= 2 values of each")
        else:
            try:
                fit = fit_joint(pts["params"].to_numpy(float), pts["n_train"].to_numpy(float),
                                pts[Y].to_numpy(float), log=True, ci=ci)
            except MatscaleError as exc:
                res.reason = f"the joint fit failed: {exc}"
            else:
                if not fit.errorbars:
                    res.reason = f"the joint fit has no error bars: {fit.errorbars_note}"
                else:
                    res.fit = fit
                    try:
                        res.optimal = compute_optimal(fit, flops_per_param_token=res.k) if np.isfinite(res.k) \
                            else compute_optimal(fit)
                    except MatscaleError as exc:
                        res.notes.append(f"no compute-optimal allocation: {exc}")
        out[arch] = res
    return out


def joint_points(runs: pd.DataFrame) -> pd.DataFrame:
    """One point per (size, frac): mean N, D and loss over its seeds, and how many seeds."""
    if runs.empty:
        return pd.DataFrame(columns=["size", "frac", "params", "n_train", Y, "n"])
    g = runs.groupby(["size", "frac"], sort=False)
    return g.agg(params=("params", "mean"), n_train=("n_train", "mean"), **{Y: (Y, "mean")},
                 n=(Y, "count")).reset_index()


def allocation(joint_fits: Mapping[str, JointFit], budgets: Iterable[float]) -> pd.DataFrame:
    """N* and D* of each arch at the compute `budgets` (FLOPs) from its joint fit."""
    from matscale.fit import compute_optimal

    budgets = np.asarray(list(budgets), dtype=float)
    rows = []
    for arch, j in joint_fits.items():
        if not j.ok or j.optimal is None:
            continue
        o = compute_optimal(j.fit, C=budgets, flops_per_param_token=j.k)
        for c, n_opt, d_opt in zip(budgets, np.atleast_1d(o["N_opt"]), np.atleast_1d(o["D_opt"])):
            rows.append({"arch": arch, "compute C (FLOPs)": c, "N* (parameters)": float(n_opt),
                         "D* (structures)": float(d_opt),
                         "predicted val loss": float(j.fit.predict(n_opt, d_opt)[0])})
    return pd.DataFrame(rows)


# -- extrapolation check ---------------------------------------------------------------------------
def extrapolation(fits: Mapping[str, SeriesFit], level: float = 0.95) -> pd.DataFrame:
    """Refit each series without its largest x and predict that held-out point.

    The law is the series' chosen law when it can be fitted with error bars on the smaller
    points, else the plain power law. Columns: arch, kind, law, x, measured (mean over seeds),
    predicted, lower/upper (confidence band at `level`), inside, rel_error, n_fit, reason, and
    `_fit` (the FitResult of the smaller points, for the chart).
    """
    from matscale.fit import fit_law

    rows = []
    for arch, s in fits.items():
        row = {"arch": arch, "kind": s.kind, "law": None, "x": np.nan, "measured": np.nan, "predicted": np.nan,
               "lower": np.nan, "upper": np.nan, "inside": None, "rel_error": np.nan, "n_fit": 0, "reason": None}
        pts = s.points
        if len(pts) < 4:
            row["reason"] = f"{len(pts)} points: holding one out leaves fewer than 3 to fit"
            rows.append(row)
            continue
        train_pts, held = pts.iloc[:-1], pts.iloc[-1]
        xs, ys = train_pts[s.x].to_numpy(float), train_pts["mean"].to_numpy(float)
        fit = None
        for law in dict.fromkeys([s.law or "power", "power"]):
            try:
                candidate = fit_law(xs, ys, law, log=True, ci="none")
            except MatscaleError:
                continue
            if candidate.errorbars:
                fit = candidate
                break
        row.update(x=float(held[s.x]), measured=float(held["mean"]), n_fit=len(train_pts))
        if fit is None:
            row["reason"] = "no law could be fitted with error bars to the smaller points"
            rows.append(row)
            continue
        lo, hi = fit.band(row["x"], level=level)
        pred = float(fit.predict(row["x"])[0])
        row.update(law=fit.law, predicted=pred, lower=float(lo[0]), upper=float(hi[0]),
                   inside=bool(lo[0] <= row["measured"] <= hi[0]), rel_error=(pred - row["measured"]) / row["measured"])
        row["_fit"] = fit
        rows.append(row)
    return pd.DataFrame(rows)


# -- equivariance ----------------------------------------------------------------------------------
def equivariance(table: pd.DataFrame, archs: Sequence[str] | None = None, compute: bool = True,
                 n_structures: int = 32, n_rotations: int = 2) -> pd.DataFrame:
    """Rotation-equivariance error of each finished run's best checkpoint.

    Measured on the first `n_structures` validation structures with `n_rotations` random
    rotations each (`matscale.models.symmetry.equivariance_error`) and cached in the run
    folder as `equivariance.json`, so the committed study keeps the numbers after its
    checkpoints (git-ignored) are gone. Columns: run_id, arch, size, frac, seed, params,
    n_train, energy_rel, forces_rel, stress_rel (and *_abs), source (cached | measured |
    unavailable: no cache and no checkpoint).
    """
    from matscale.runs import atomic_write_json

    rows = []
    sel = trainable(table[table["finished"]])
    if archs is not None:
        sel = sel[sel["arch"].isin(list(archs))]
    for r in sel.to_dict("records"):
        row = {k: r[k] for k in ("run_id", "arch", "size", "frac", "seed", "params", "n_train")}
        cache = Path(r["run_dir"]) / EQUIVARIANCE_FILE
        data, source = None, "unavailable"
        if cache.is_file():
            try:
                data, source = json.loads(cache.read_text()), "cached"
            except (OSError, ValueError):
                data = None
            if data and (data.get("n_structures_requested"), data.get("n_rotations")) != (n_structures, n_rotations):
                data, source = None, "unavailable"
        if data is None and compute and (Path(r["run_dir"]) / "checkpoints" / "best.pt").is_file():
            data = _measure_equivariance(r["run_dir"], n_structures, n_rotations)
            atomic_write_json(cache, data)
            source = "measured"
        if data:
            row.update({k: data.get(k, np.nan) for k in ("energy_rel", "forces_rel", "stress_rel",
                                                          "energy_abs", "forces_abs", "stress_abs")})
        row["source"] = source
        rows.append(row)
    return pd.DataFrame(rows)


def _measure_equivariance(run_dir: str | Path, n_structures: int, n_rotations: int) -> dict:
    import torch

    from matscale.models.symmetry import equivariance_error
    from matscale.train.checkpoint import load_model
    from matscale.train.data import open_eval_split

    model, config, _ = load_model(run_dir, "best", "cpu")
    ds = open_eval_split(config, "val")
    atoms = [ds[i] for i in range(min(n_structures, len(ds)))]
    with torch.random.fork_rng():
        err = equivariance_error(model, atoms, n_rotations=n_rotations, seed=0)
    return {"checkpoint": "best", "n_structures_requested": n_structures, **err}


# -- the architecture comparison ---------------------------------------------------------------------
def comparison(data_fits: Mapping[str, SeriesFit], param_fits: Mapping[str, SeriesFit],
               frontier_fits: Mapping[str, FrontierFit] | None = None,
               joint_fits: Mapping[str, JointFit] | None = None, digits: int = 3) -> pd.DataFrame:
    """Exponents ± stderr [95% CI] of every architecture side by side (one row per arch).

    Columns: data exponent (law), parameter exponent (law), compute exponent gamma of the
    frontier, joint alpha and beta and the compute-optimal share a = beta/(alpha+beta).
    A missing fit shows '—' with the reason in the `notes` column.
    """
    archs = list(dict.fromkeys([*data_fits, *param_fits, *(frontier_fits or {}), *(joint_fits or {})]))
    rows = []
    for arch in archs:
        row, notes = {"arch": arch}, []
        for label, fits in (("data", data_fits), ("parameters", param_fits)):
            s = fits.get(arch)
            if s is not None and s.ok:
                p = s.fit.params[s.exponent]
                row[f"{label} exponent"] = format_estimate(p.value, p.stderr, p.ci_low, p.ci_high, digits)
                row[f"{label} law"] = s.law
            else:
                row[f"{label} exponent"], row[f"{label} law"] = "—", "—"
                if s is not None:
                    notes.append(f"{label}: {s.reason}")
        if frontier_fits is not None:
            f = frontier_fits.get(arch)
            if f is not None and f.ok:
                p = f.fit.params["gamma"]
                row["compute exponent γ"] = format_estimate(p.value, p.stderr, p.ci_low, p.ci_high, digits)
            else:
                row["compute exponent γ"] = "—"
                if f is not None:
                    notes.append(f"compute: {f.reason}")
        if joint_fits is not None:
            j = joint_fits.get(arch)
            if j is not None and j.ok:
                for name, col in (("alpha", "joint α (N)"), ("beta", "joint β (D)")):
                    p = j.fit.params[name]
                    row[col] = format_estimate(p.value, p.stderr, p.ci_low, p.ci_high, digits)
                o = j.optimal
                row["a = β/(α+β)"] = format_estimate(o["a"], o["a_stderr"], *o["a_ci"], digits) if o else "—"
            else:
                row["joint α (N)"] = row["joint β (D)"] = row["a = β/(α+β)"] = "—"
                if j is not None:
                    notes.append(f"joint: {j.reason}")
        row["notes"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows).set_index("arch")


def exponent_rows(data_fits: Mapping[str, SeriesFit], param_fits: Mapping[str, SeriesFit],
                  frontier_fits: Mapping[str, FrontierFit] | None = None) -> pd.DataFrame:
    """Long table for a chart: arch, exponent label, value, ci_low, ci_high (fitted ones only)."""
    rows = []
    for label, fits in (("data (D)", data_fits), ("parameters (N)", param_fits)):
        for arch, s in fits.items():
            if s.ok:
                p = s.fit.params[s.exponent]
                rows.append({"arch": arch, "exponent": label, "value": p.value, "ci_low": p.ci_low,
                             "ci_high": p.ci_high})
    for arch, f in (frontier_fits or {}).items():
        if f.ok:
            p = f.fit.params["gamma"]
            rows.append({"arch": arch, "exponent": "compute (C)", "value": p.value, "ci_low": p.ci_low,
                         "ci_high": p.ci_high})
    return pd.DataFrame(rows, columns=["arch", "exponent", "value", "ci_low", "ci_high"])


# -- joint-law slices for charts ---------------------------------------------------------------------
class JointSlice:
    """The joint law at fixed D (a function of N) or fixed N (a function of D), with its band:
    the `predict(x)` / `band(x, level=)` pair the chart builders expect."""

    def __init__(self, fit, N: float | None = None, D: float | None = None) -> None:
        if (N is None) == (D is None):
            raise ConfigError("fix exactly one of N and D")
        self.fit, self.N, self.D = fit, N, D

    def _args(self, x):
        x = np.asarray(x, dtype=float)
        return (x, np.full_like(x, self.D)) if self.N is None else (np.full_like(x, self.N), x)

    def predict(self, x):
        return self.fit.predict(*self._args(x))

    def band(self, x, level: float = 0.95):
        return self.fit.band(*self._args(x), level=level)


def joint_slices(j: JointFit, along: str = "params") -> tuple[pd.DataFrame, dict[str, JointSlice]]:
    """Points (mean over seeds) and one `JointSlice` per value of the other input, for a chart
    of loss against `along` ("params" or "n_train") with one coloured curve per slice."""
    other = "n_train" if along == "params" else "params"
    pts = joint_points(j.runs)
    label = "D" if other == "n_train" else "N"
    setting = "frac" if other == "n_train" else "size"
    pts[label] = pts.groupby(setting)[other].transform("mean").map(lambda v: f"{label} = {v:.3g}")
    slices = {}
    for _, group in pts.groupby(setting, sort=False):
        value = float(group[other].mean())
        if len(group) >= 2:  # a slice with one point is not a curve worth drawing
            name = group[label].iloc[0]
            slices[name] = JointSlice(j.fit, D=value) if other == "n_train" else JointSlice(j.fit, N=value)
    return pts[pts[label].isin(list(slices))], slices


def archive(study: str | Path = "default", runs_root: str | Path = "runs") -> list[Path]:
    """Move the planned run folders of `study` that exist to `runs_root/_archive/<UTC time>/`.

    `make study` calls this before the sweep, so the study reruns from scratch while the
    previous results stay on disk (runs.load and the study pages never look into _archive)."""
    import datetime
    import os

    from matscale.runs import resolve_root

    root = resolve_root(runs_root)
    present = [root / r for r in plan(study)["run_id"] if (root / r).is_dir()]
    if not present:
        return []
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = root / "_archive" / stamp
    dest.mkdir(parents=True, exist_ok=False)
    moved = []
    for path in present:
        os.replace(path, dest / path.name)  # same file system: a rename, atomic per folder
        moved.append(dest / path.name)
    return moved


# -- command line ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """`python -m matscale.study [STUDY] [--runs-root DIR]`: status of a study's runs, and the
    equivariance measurement of every finished run (stored next to it, so it survives when the
    checkpoints are not committed). Run it after the study and before committing runs/."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m matscale.study", description=main.__doc__.split("\n")[0])
    p.add_argument("study", nargs="?", default="default", help="study name under book/sweeps/ or a sweep file")
    p.add_argument("--runs-root", default="runs", help="runs folder (relative: from the repository root)")
    p.add_argument("--no-equivariance", action="store_true", help="only print the status")
    p.add_argument("--archive", action="store_true",
                   help="move the study's existing run folders to RUNS_ROOT/_archive/<UTC time>/ and stop, "
                        "so the next sweep reruns the study from scratch (nothing is deleted)")
    args = p.parse_args(argv)
    try:
        if args.archive:
            moved = archive(args.study, args.runs_root)
            print(f"archived {len(moved)} run folder(s)" + (f" to {moved[0].parent}" if moved else ""))
            return 0
        table = results(args.study, args.runs_root)
        print(status_table(table).to_string())
        if not args.no_equivariance:
            eq = equivariance(table)
            if len(eq):
                counts = eq["source"].value_counts()
                print("equivariance measurements: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    except MatscaleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
