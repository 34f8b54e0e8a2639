"""Scaling-law fits of a study's results table (lmfit through matscale.fit).

    scaling(table, kind, archs) -> {arch: SeriesFit}   AICc comparison of the 1-D laws, chosen fit
    fit_series(runs, x, by=) -> SeriesFit
    frontier(table, curves, archs) -> {arch: FrontierFit};  overall_front(curves)
    joint(table, archs) -> {arch: JointFit}  L(N, D) and the compute-optimal allocation
    joint_points(runs), joint_slices(joint fit) (for charts)
    extrapolation(scaling fits) -> DataFrame   fit without the largest run, predict it, compare

A page asks for a fit and gets either the fit or a `reason` saying why there is none (too
few finished runs, a degenerate series): pages print the reason and never invent a number.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from matscale.errors import ConfigError, MatscaleError
from matscale.study.results import (AXES, AXIS_TITLES, EXPONENTS, MIN_SEEDS_FOR_WEIGHTS, SETTING, Y, aggregate,
                                    series, trainable)


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
