"""Scaling-law fits of a study's results table (lmfit through matscale.fit).

    scaling(table, kind, archs) -> {arch: SeriesFit}   the lowest-AICc IDENTIFIED 1-D law per series
    fit_series(runs, x, y=, by=) -> SeriesFit
    term_exponents(table, archs) -> DataFrame          exponent of each physical term beside the total
    zero_force_error(table), plateau(runs, zero_force, arch, by=)   the zero-force rule
    main_rows(table)                                   the scaling points (role "main")
    frontier, overall_front, final_points, joint, joint_points, joint_slices   (study.multi)
    extrapolation, forecast, PredictionBand, seed_noise                         (study.extrapolate)

A page asks for a fit and gets either the fit or a `reason` saying why there is none (too
few finished runs, a series that does not learn, a law these points do not identify): pages
print the reason and never invent a number. "Identified" is matscale.fit.identify's rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from matscale.errors import MatscaleError
from matscale.study.results import (AXES, AXIS_TITLES, EXPONENTS, MIN_SEEDS_FOR_WEIGHTS, PHYSICAL, SETTING, Y,
                                    aggregate, baselines, series, trainable, with_role)

FORCE = "val_force_l2mae_eV_A"  # the closed-form baselines predict zero forces: theirs is the zero-force error
ZERO_FORCE_MARGIN = 0.05  # a model whose force error is within 5% of zero forces at every point has not learned
TERMS = {Y: "total loss", "val_energy_mae_eV_atom": "energy MAE", FORCE: "force L2MAE",
         "val_stress_mae_eV_A3": "stress MAE"}


@dataclass
class SeriesFit:
    """One arch's scaling series and the laws fitted to it.

    `points`: one row per distinct x (mean, std over seeds, n); `runs`: the runs themselves;
    `comparison`: the AICc table with `identified` and `why not` columns; `fits`: law ->
    FitResult (profile CIs); `law`/`fit`: the chosen law, the lowest-AICc identified one;
    `fallback`: the note saying which better-ranked laws are not identified; `reason`: why
    there is no fit (then `fit` is None); `notes`: what the reader should know.
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
    fallback: str | None = None
    sigma: np.ndarray | None = None  # per-point sigma of the mean the fit was weighted with (None: unweighted)
    learns: bool = True  # False: the arch does not beat zero forces, no law is fitted (see `plateau`)

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


def main_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The scaling points of a study (role "main"); every row when the table has no `role` column."""
    return with_role(table, "main")


# -- weights and the one fit ---------------------------------------------------------------------------
def weights(points: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """(sigma of each point's mean, note): std/sqrt(n) over seeds when every point has >= 3
    seeds with a spread, else None (unweighted: the scatter about the law sets the errors)."""
    if len(points) and points["n"].min() >= MIN_SEEDS_FOR_WEIGHTS and (points["std"] > 0).all():
        sem = (points["std"] / np.sqrt(points["n"])).to_numpy(float)
        return sem, (f"Each point is the mean of >= {MIN_SEEDS_FOR_WEIGHTS} seeds, weighted by 1/(its standard "
                     "error, std/√n); the intervals carry that seed noise (widened by √(χ²/dof) where the law "
                     "misses the points by more).")
    if len(points) and points["n"].max() > 1:
        return None, ("Points are means over seeds; with fewer than "
                      f"{MIN_SEEDS_FOR_WEIGHTS} seeds at every point the spread is too noisy to weight the "
                      "fit, so it is shown as error bars only.")
    return None, "One run per point (no seeds to estimate the spread)."


def fit_one(xs, ys, law: str, sigma=None, ci: str = "profile", ci_level: float = 0.95):
    """fit_law in log space; with seed sigmas the intervals use the seed noise, or the scatter
    about the law when that is larger (chi2/dof > 1: the covariance is then rescaled)."""
    from matscale.fit import fit_law

    fit = fit_law(xs, ys, law, sigma, log=True, ci=ci, ci_level=ci_level)
    if sigma is not None and fit.dof > 0 and fit.chi2 / fit.dof > 1:
        fit = fit_law(xs, ys, law, sigma, log=True, ci=ci, ci_level=ci_level, absolute_sigma=False)
        fit.notes.append(f"chi2/dof {fit.chi2 / fit.dof:.2g} > 1: intervals widened from the seed noise")
    return fit


def not_identified_text(fits: Mapping[str, object], laws: Sequence[str]) -> str:
    """'power_floor (L_inf on its bound; fewer than 6 points)' for each law in `laws`."""
    return ", ".join(f"{name} ({'; '.join(fits[name].why_not)})" for name in laws)


def fit_series(runs: pd.DataFrame, x: str, y: str = Y, laws: Sequence[str] | None = None, arch: str = "",
               kind: str = "", at=None, by: str | None = None, ci: str = "profile",
               ci_level: float = 0.95) -> SeriesFit:
    """Fit the 1-D laws to a series (one row per run) in log space, rank them by AICc and keep
    the best one these points identify.

    Runs sharing the setting `by` (frac or size) are seeds of one point (see `aggregate`).
    Residuals are taken on ln(loss) (relative errors). Laws default to every 1-D law whose
    AICc is defined for the number of points (k + 2 <= n).
    """
    from matscale.fit import LAWS, ONE_D_LAWS, compare_laws

    if len(runs):
        runs = runs[np.isfinite(runs[y]) & (runs[y] > 0)]
    points = aggregate(runs, x, y, by) if len(runs) else pd.DataFrame(columns=[x, "mean", "std", "n"])
    out = SeriesFit(arch=arch, kind=kind, x=x, at=at, runs=runs, points=points)
    n = len(points)
    if n < 3:
        out.reason = (f"{n} distinct {AXIS_TITLES.get(x, x)} value(s) with finished runs; a power law needs "
                      "at least 3 to be fitted and 4 to be identified")
        return out
    sigma, note = weights(points)
    out.sigma = sigma
    out.notes.append(note)
    xs, ys = points[x].to_numpy(float), points["mean"].to_numpy(float)
    if laws is None:
        laws = [name for name in ONE_D_LAWS if LAWS[name].n_params + 2 <= n] or ["power"]
    table = compare_laws(xs, ys, laws=list(laws), sigma=sigma, log=True)
    fits = {}
    for name in table["law"]:
        if table.loc[table["law"] == name, "error"].iloc[0]:
            continue
        try:
            fits[name] = fit_one(xs, ys, name, sigma, ci=ci, ci_level=ci_level)
        except MatscaleError as exc:
            out.notes.append(f"{name}: could not be refitted with intervals ({exc}).")
    table["identified"] = [name in fits and fits[name].identified for name in table["law"]]
    table["why not"] = ["; ".join(fits[name].why_not) if name in fits else (err or "not fitted")
                        for name, err in zip(table["law"], table["error"])]
    out.comparison, out.fits = table, fits
    order = [name for name in table["law"] if name in fits]  # best AICc first
    chosen = next((name for name in order if fits[name].identified), None)
    if chosen is None:
        out.reason = "not identified by these points: " + not_identified_text(fits, order) if order else \
            "no law could be fitted: " + "; ".join(f"{r['law']}: {r['error']}" for r in table.to_dict("records"))
        return out
    better = order[:order.index(chosen)]
    if better:
        verb = "is" if len(better) == 1 else "are"
        out.fallback = (f"{not_identified_text(fits, better)} {verb} not identified by these points; "
                        f"shown: {chosen} (AICc fallback)")
    out.law, out.fit = chosen, fits[chosen]
    return out


# -- the zero-force rule ---------------------------------------------------------------------------------
def zero_force_error(table: pd.DataFrame) -> float:
    """Force L2MAE of zero forces (eV/Å): the closed-form baselines' (median), NaN without one."""
    if FORCE not in table.columns:
        return math.nan
    base = baselines(table)
    values = pd.to_numeric(base[FORCE], errors="coerce") if len(base) else pd.Series(dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    return float(values.median()) if len(values) else math.nan


def plateau(runs: pd.DataFrame, zero_force: float, arch: str, by: str | None = None) -> str | None:
    """Why `runs` get no law when their force error never clearly beats zero forces (within
    ZERO_FORCE_MARGIN of it at every point; `by` groups seeds into points), else None."""
    if not math.isfinite(zero_force) or runs.empty or FORCE not in runs.columns:
        return None
    f = pd.to_numeric(runs[FORCE], errors="coerce")
    values = (f.groupby(runs[by]).mean() if by else f).dropna()
    if values.empty or (values < (1 - ZERO_FORCE_MARGIN) * zero_force).any():
        return None
    lo, hi = values.min(), values.max()
    span = f"{lo:.3g}" if f"{lo:.3g}" == f"{hi:.3g}" else f"{lo:.3g}–{hi:.3g}"
    return (f"{arch} does not beat the zero-force baseline (force L2MAE {span} vs {zero_force:.4g} eV/Å); "
            "no law is fitted to a plateau")


def scaling(table: pd.DataFrame, kind: str, archs: Sequence[str] | None = None,
            at: Mapping[str, object] | None = None, y: str = Y, **kwargs) -> dict[str, SeriesFit]:
    """{arch: SeriesFit} of the data ("data") or parameter ("params") series of each arch
    (of `y`: the total loss, or a physical error column)."""
    archs = list(archs) if archs is not None else list(pd.unique(trainable(table)["arch"]))
    zero = zero_force_error(table)
    out = {}
    for arch in archs:
        runs = series(main_rows(table), arch, kind, at=(at or {}).get(arch))
        fixed = runs["series_at"].iloc[0] if len(runs) else None
        flat = plateau(runs, zero, arch, by=SETTING[kind])
        if flat:
            pts = aggregate(runs, AXES[kind], y, SETTING[kind])
            out[arch] = SeriesFit(arch=arch, kind=kind, x=AXES[kind], at=fixed, runs=runs, points=pts, reason=flat,
                                  learns=False)
            continue
        out[arch] = fit_series(runs, AXES[kind], y=y, arch=arch, kind=kind, at=fixed, by=SETTING[kind], **kwargs)
    return out


def term_exponents(table: pd.DataFrame, archs: Sequence[str] | None = None,
                   kinds: Sequence[str] = ("data", "params"), terms: Sequence[str] = tuple(TERMS)) -> pd.DataFrame:
    """The exponent of the total loss and of each physical term (energy, force, stress errors)
    along each arch's data and parameter series: one row per arch, kind, term with the
    chosen (lowest-AICc identified) law, exponent, stderr, 95% CI, identified and a note."""
    rows = []
    for kind in kinds:
        for term in terms:
            if term not in table.columns:
                continue
            for arch, s in scaling(table, kind, archs, y=term).items():
                row = {"arch": arch, "kind": kind, "term": TERMS.get(term, term), "law": s.law, "exponent": np.nan,
                       "stderr": np.nan, "ci_low": np.nan, "ci_high": np.nan, "identified": s.ok,
                       "note": s.reason or s.fallback or ""}
                if s.ok:
                    p = s.fit.params[s.exponent]
                    row.update(exponent=p.value, stderr=p.stderr, ci_low=p.ci_low, ci_high=p.ci_high)
                rows.append(row)
    return pd.DataFrame(rows, columns=["arch", "kind", "term", "law", "exponent", "stderr", "ci_low", "ci_high",
                                       "identified", "note"])


from matscale.study.multi import (FrontierFit, JointFit, JointSlice, final_points, flops_per_param_sample,  # noqa: E402
                                  frontier, grid_reason, joint, joint_points, joint_slices, overall_front)
from matscale.study.extrapolate import PredictionBand, extrapolation, forecast, seed_noise  # noqa: E402

__all__ = ["SeriesFit", "FrontierFit", "JointFit", "JointSlice", "PredictionBand", "extrapolation", "final_points",
           "fit_one", "fit_series", "flops_per_param_sample", "forecast", "frontier", "grid_reason", "joint",
           "joint_points", "joint_slices", "main_rows", "overall_front", "plateau", "scaling", "seed_noise",
           "term_exponents", "weights", "zero_force_error", "FORCE", "TERMS", "PHYSICAL"]
