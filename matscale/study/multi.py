"""Fits over many runs of an arch: the compute frontier and the joint law L(N, D).

    final_points(table, curves) -> one row per completed run: its final validation at its total FLOPs
    frontier(table, curves, archs) -> {arch: FrontierFit};  overall_front(curves)
    joint(table, archs) -> {arch: JointFit}  L(N, D) and the compute-optimal allocation
    grid_reason(points), joint_points(runs), joint_slices(joint fit) (for charts)

The frontier is built from runs whose schedule finished, each at its FINAL validation: a
mid-schedule checkpoint of a small model is not a model trained at that compute. The joint
law is fitted only to a grid (>= 2 data sizes D each run at the same >= 3 model sizes N): a
cross of two series shares one corner and does not separate the N and D terms.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from matscale.errors import ConfigError, MatscaleError
from matscale.study.fits import main_rows, plateau, zero_force_error
from matscale.study.results import Y, trainable

FRONTIER_TEXT = {"frontier": "L_inf + F C^-gamma", "frontier_power": "F C^-gamma"}
GRID_N, GRID_D = 3, 2  # the smallest grid that identifies the joint law: 3 sizes at each of 2 data sizes


# -- compute ------------------------------------------------------------------------------------------
@dataclass
class FrontierFit:
    """The compute Pareto front of one arch's finished runs and the law fitted to it.

    `curves`: every validation row of its runs (the chart's lines); `points`: each completed
    run's final validation at its total FLOPs; `front`: their Pareto front; `fits`: law ->
    FitResult for "frontier" (L_inf + F C^-gamma) and, when that is not identified,
    "frontier_power" (F C^-gamma); `law`/`fit`: the identified one shown; `reason`: why none.
    """

    arch: str
    curves: pd.DataFrame
    front: pd.DataFrame
    fit: object = None
    reason: str | None = None
    points: pd.DataFrame | None = None
    fits: dict = field(default_factory=dict)
    law: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fit is not None


def final_points(table: pd.DataFrame, curve_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run whose schedule finished (status "completed"): run_id, arch, size, frac,
    seed, flops (its total training FLOPs) and val_loss (its FINAL validation, the last metrics
    row when the summary has no final_val_loss). Stopped or interrupted runs are left out."""
    done = trainable(table[table["status"] == "completed"])
    cols = ["run_id", "arch", "size", "frac", "seed"]
    out = done[cols].copy()
    out["flops"] = pd.to_numeric(done["flops"], errors="coerce")
    out[Y] = pd.to_numeric(done["final_val_loss"], errors="coerce") if "final_val_loss" in done else np.nan
    if curve_rows is not None and len(curve_rows) and out[[Y, "flops"]].isna().any().any():
        last = curve_rows.sort_values("flops").groupby("run_id").tail(1).set_index("run_id")
        for col in (Y, "flops"):
            out[col] = out[col].fillna(out["run_id"].map(last[col]))
    out = out[np.isfinite(out[Y]) & (out[Y] > 0) & np.isfinite(out["flops"]) & (out["flops"] > 0)]
    return out.reset_index(drop=True)


def frontier(table: pd.DataFrame, curve_rows: pd.DataFrame, archs: Sequence[str] | None = None,
             bootstrap: int = 100, seed: int = 0) -> dict[str, FrontierFit]:
    """{arch: FrontierFit}: Pareto front of (total FLOPs, final val loss) over the arch's completed
    runs, with L(C) = L_inf + F C^-gamma, or F C^-gamma when the floor is not identified.

    The front's points are minima over runs, not independent measurements, so the intervals
    come from a bootstrap over whole runs (`bootstrap` resamples).
    """
    from matscale.fit import LAWS, compute_frontier, fit_frontier

    archs = list(archs) if archs is not None else list(pd.unique(trainable(table)["arch"]))
    finals = final_points(table, curve_rows)
    zero = zero_force_error(table)
    out = {}
    for arch in archs:
        c = curve_rows[curve_rows["arch"] == arch] if len(curve_rows) else curve_rows
        c = c[np.isfinite(c["val_loss"]) & (c["flops"] > 0)] if len(c) else c
        pts = finals[finals["arch"] == arch]
        if pts.empty:
            out[arch] = FrontierFit(arch, c, pts, points=pts, reason="no completed runs with a final validation")
            continue
        front = compute_frontier(pts, "flops", Y, "run_id")
        res = out[arch] = FrontierFit(arch, c, front, points=pts)
        flat = plateau(trainable(table[table["run_id"].isin(pts["run_id"])]), zero, arch)
        if flat:
            res.reason = flat
            continue
        for law in ("frontier", "frontier_power"):
            if len(front) < LAWS[law].n_params + 1:
                continue
            try:
                res.fits[law] = fit_frontier(pts, "flops", Y, "run_id", law=law, log=True, bootstrap=bootstrap,
                                             seed=seed)
            except MatscaleError as exc:
                res.notes.append(f"{law}: {exc}")
                continue
            if res.fits[law].identified:
                res.law, res.fit = law, res.fits[law]
                break
        if res.fit is None:
            if res.fits:
                res.reason = "not identified by these points: " + ", ".join(
                    f"{FRONTIER_TEXT[law]} ({'; '.join(f.why_not)})" for law, f in res.fits.items())
            else:
                res.reason = (f"the Pareto front of final points has {len(front)} point(s); F C^-gamma needs at "
                              "least 4 to be identified" + (f" ({'; '.join(res.notes)})" if res.notes else ""))
        elif res.law != "frontier":
            res.notes.append(f"{FRONTIER_TEXT['frontier']} is not identified by these points "
                             f"({'; '.join(res.fits['frontier'].why_not)}); shown: {FRONTIER_TEXT[res.law]} "
                             "(fallback)" if "frontier" in res.fits else
                             f"the front has too few points for a floor; shown: {FRONTIER_TEXT[res.law]}")
    return out


def overall_front(curve_rows: pd.DataFrame, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The Pareto front over all architectures (which arch gives the lowest loss per FLOP): over
    the completed runs' final points when `table` is given, else over every validation row."""
    from matscale.fit import compute_frontier

    c = final_points(table, curve_rows) if table is not None else \
        curve_rows[np.isfinite(curve_rows["val_loss"]) & (curve_rows["flops"] > 0)]
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


# -- the joint law --------------------------------------------------------------------------------------
@dataclass
class JointFit:
    """L(N, D) = E + A N^-alpha + B D^-beta over one arch's main runs, and what it implies.

    `fit` is set only when the points form a grid and identify the law; `candidate` keeps the
    fitted but unidentified law (for the record, never shown as numbers)."""

    arch: str
    runs: pd.DataFrame
    fit: object = None
    optimal: dict | None = None
    k: float = math.nan
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    candidate: object = None

    @property
    def ok(self) -> bool:
        return self.fit is not None


def grid_reason(points: pd.DataFrame) -> str | None:
    """None when some >= 2 data sizes D (fractions) were each run at the same >= 3 model sizes N,
    else why the runs are not a grid (points: `joint_points`, one row per size and frac)."""
    sizes = {frac: set(g["size"]) for frac, g in points.groupby("frac")} if len(points) else {}
    fracs = sorted(sizes)
    shared = max((len(sizes[a] & sizes[b]) for i, a in enumerate(fracs) for b in fracs[i + 1:]), default=0)
    if len(fracs) >= GRID_D and shared >= GRID_N:
        return None
    return (f"not identified: the runs are not a grid ({len(fracs)} data size(s) D, {points['size'].nunique() if len(points) else 0} "
            f"model size(s) N, at most {shared} N shared by two D; the joint law needs >= {GRID_D} D each at the "
            f"same >= {GRID_N} N)")


def joint(table: pd.DataFrame, archs: Sequence[str] | None = None, ci: str = "profile") -> dict[str, JointFit]:
    """{arch: JointFit}: the joint law over the finished main runs of the arch (all sizes × fracs).

    Seeds are averaged per (N, D). Only a grid is fitted (`grid_reason`), and only an identified
    fit is kept. The compute-optimal allocation N* ∝ C^a, D* ∝ C^b uses C = k N D with k the
    arch's measured FLOPs per parameter per structure seen (as in Chinchilla's C = 6 N D).
    """
    from matscale.fit import compute_optimal, fit_joint

    archs = list(archs) if archs is not None else list(pd.unique(trainable(table)["arch"]))
    zero = zero_force_error(table)
    main = main_rows(table)
    out = {}
    for arch in archs:
        runs = trainable(main[(main["arch"] == arch) & main["finished"]])
        runs = runs[np.isfinite(runs[Y]) & (runs[Y] > 0)]
        res = out[arch] = JointFit(arch, runs, k=flops_per_param_sample(runs))
        pts = joint_points(runs)
        res.reason = plateau(runs, zero, arch) or grid_reason(pts)
        if res.reason:
            continue
        try:
            fit = fit_joint(pts["params"].to_numpy(float), pts["n_train"].to_numpy(float),
                            pts[Y].to_numpy(float), log=True, ci=ci)
        except MatscaleError as exc:
            res.reason = f"the joint fit failed: {exc}"
            continue
        if not fit.identified:
            res.candidate = fit
            res.reason = "not identified by these points: " + "; ".join(fit.why_not)
            continue
        res.fit = fit
        try:
            res.optimal = compute_optimal(fit, flops_per_param_token=res.k) if np.isfinite(res.k) \
                else compute_optimal(fit)
        except MatscaleError as exc:
            res.notes.append(f"no compute-optimal allocation: {exc}")
    return out


def joint_points(runs: pd.DataFrame) -> pd.DataFrame:
    """One point per (size, frac): mean N, D and loss over its seeds, and how many seeds."""
    if runs.empty:
        return pd.DataFrame(columns=["size", "frac", "params", "n_train", Y, "n"])
    g = runs.groupby(["size", "frac"], sort=False)
    return g.agg(params=("params", "mean"), n_train=("n_train", "mean"), **{Y: (Y, "mean")},
                 n=(Y, "count")).reset_index()


# -- joint-law slices for charts ------------------------------------------------------------------
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

__all__ = ["FrontierFit", "JointFit", "JointSlice", "final_points", "flops_per_param_sample", "frontier",
           "grid_reason", "joint", "joint_points", "joint_slices", "overall_front"]
