"""Predictions beyond the fitted points, with prediction intervals that include seed noise.

    seed_noise(points) -> (relative seed std, dof)   pooled over the points with >= 2 seeds
    PredictionBand(fit, rel_noise, n_seeds)          predict(x) / band(x, level): the chart interface
    extrapolation(fits) -> DataFrame                 fit without the largest run, predict it, compare
    forecast(fits, decades=(0.5, 1)) -> DataFrame    each chosen law half a decade and a decade beyond

A prediction interval is the fit's confidence band (where the law may be) widened in
quadrature by the scatter of a new measurement: the pooled seed variance of the points (on
ln loss, i.e. relative: the seed spread of a loss scales with the loss), divided by the number
of seeds the new measurement averages. Without seeds the residual scatter about the law
stands in for it (an unweighted fit only).
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from matscale.errors import MatscaleError
from matscale.study.fits import SeriesFit, fit_one, weights

REACH_DECADES = 0.5  # the extrapolation reaches at least this far beyond the largest fitted x


def seed_noise(points: pd.DataFrame) -> tuple[float, int]:
    """(pooled relative std of one run's loss over seeds, its degrees of freedom); (NaN, 0) when
    no point has two seeds. Pooled as sum((n_i - 1) (std_i / mean_i)^2) / sum(n_i - 1)."""
    if not len(points):
        return math.nan, 0
    p = points[(points["n"] >= 2) & np.isfinite(points["std"])]
    dof = int((p["n"] - 1).sum())
    if dof == 0:
        return math.nan, 0
    return float(np.sqrt(((p["n"] - 1) * (p["std"] / p["mean"]) ** 2).sum() / dof)), dof


class PredictionBand:
    """A fit seen through its prediction interval: `predict(x)` is the law, `band(x, level)` the
    interval for a new measurement averaging `n_seeds` runs (relative seed std `rel_noise`;
    None: the residual scatter of an unweighted fit). What the chart builders expect."""

    def __init__(self, fit, rel_noise: float | None = None, n_seeds: int = 1) -> None:
        self.fit, self.n_seeds = fit, max(int(n_seeds), 1)
        self.rel_noise = None if rel_noise is None or not math.isfinite(rel_noise) else float(rel_noise)

    @property
    def law(self) -> str:
        return self.fit.law

    def predict(self, x):
        return self.fit.predict(x)

    def confidence(self, x, level: float = 0.95):
        return self.fit.band(x, level=level)

    def band(self, x, level: float = 0.95):
        if self.rel_noise is None:
            return self.fit.band(x, level=level, kind="prediction")
        noise = self.rel_noise / math.sqrt(self.n_seeds) * np.asarray(self.fit.predict(x), dtype=float)
        return self.fit.band(x, level=level, kind="prediction", noise_sigma=noise)


def _band(fit, points: pd.DataFrame, n_seeds: int = 1) -> tuple[PredictionBand, str]:
    rel, dof = seed_noise(points)
    if math.isfinite(rel):
        return PredictionBand(fit, rel, n_seeds), f"seed spread {100 * rel:.2g}% per run (pooled, {dof} dof)"
    return PredictionBand(fit, None, n_seeds), "residual scatter (no point has 2 seeds)"


def extrapolation(fits: Mapping[str, SeriesFit], level: float = 0.95) -> pd.DataFrame:
    """Refit each series without its largest x and predict that held-out point.

    The law is the series' chosen law when the smaller points identify it, else the plain power
    law (weighted as the series is). The interval is a PREDICTION interval at `level` for the
    held-out point's mean over its seeds (`n_seeds`). Columns: arch, kind, law, x, measured,
    n_seeds, predicted, lower, upper (prediction interval), conf_lower, conf_upper (the law's
    confidence band alone), inside, rel_error, x_reach (half a decade beyond the largest fitted
    x), reach_lower/reach_upper (the prediction interval there), noise, n_fit, reason, and `_fit`
    (the PredictionBand of the smaller points, for the chart).
    """
    rows = []
    for arch, s in fits.items():
        row = {"arch": arch, "kind": s.kind, "law": None, "x": np.nan, "measured": np.nan, "n_seeds": 0,
               "predicted": np.nan, "lower": np.nan, "upper": np.nan, "conf_lower": np.nan, "conf_upper": np.nan,
               "inside": None, "rel_error": np.nan, "x_reach": np.nan, "reach_lower": np.nan,
               "reach_upper": np.nan, "noise": None, "n_fit": 0, "reason": None}
        rows.append(row)
        pts = s.points
        if not s.learns:
            row["reason"] = s.reason
            continue
        if len(pts) < 4:
            row["reason"] = f"{len(pts)} points: holding one out leaves fewer than 3 to fit"
            continue
        train_pts, held = pts.iloc[:-1], pts.iloc[-1]
        xs, ys = train_pts[s.x].to_numpy(float), train_pts["mean"].to_numpy(float)
        sigma, _ = weights(train_pts)
        row.update(x=float(held[s.x]), measured=float(held["mean"]), n_seeds=int(held["n"]), n_fit=len(train_pts))
        fit, why = None, []
        for law in dict.fromkeys([s.law or "power", "power"]):
            try:
                candidate = fit_one(xs, ys, law, sigma, ci="none")
            except MatscaleError as exc:
                why.append(f"{law}: {exc}")
                continue
            if candidate.identified:
                fit = candidate
                break
            why.append(f"{law}: {'; '.join(candidate.why_not)}")
        if fit is None:
            row["reason"] = "the smaller points identify no law (" + "; ".join(why) + ")"
            continue
        pb, row["noise"] = _band(fit, train_pts, row["n_seeds"])
        x = np.array([row["x"]])
        lo, hi = pb.band(x, level=level)
        clo, chi = pb.confidence(x, level=level)
        pred = float(fit.predict(x)[0])
        reach = float(xs.max() * 10 ** REACH_DECADES)
        rlo, rhi = pb.band(np.array([reach]), level=level)
        row.update(law=fit.law, predicted=pred, lower=float(lo[0]), upper=float(hi[0]), conf_lower=float(clo[0]),
                   conf_upper=float(chi[0]), inside=bool(lo[0] <= row["measured"] <= hi[0]),
                   rel_error=(pred - row["measured"]) / row["measured"], x_reach=reach,
                   reach_lower=float(rlo[0]), reach_upper=float(rhi[0]))
        row["_fit"] = pb
    return pd.DataFrame(rows)


def forecast(fits: Mapping[str, SeriesFit], decades=(REACH_DECADES, 1.0), level: float = 0.95) -> pd.DataFrame:
    """Each identified series' law beyond its largest point: arch, kind, law, decades, x,
    predicted, lower/upper (prediction interval for one new run), conf_lower/conf_upper, noise."""
    rows = []
    for arch, s in fits.items():
        if not s.ok:
            continue
        pb, noise = _band(s.fit, s.points)
        x_max = float(s.points[s.x].max())
        xs = x_max * 10 ** np.asarray(decades, dtype=float)
        pred, (lo, hi), (clo, chi) = s.fit.predict(xs), pb.band(xs, level=level), pb.confidence(xs, level=level)
        for i, d in enumerate(decades):
            rows.append({"arch": arch, "kind": s.kind, "law": s.law, "decades beyond": float(d), "x": float(xs[i]),
                         "predicted": float(pred[i]), "lower": float(lo[i]), "upper": float(hi[i]),
                         "conf_lower": float(clo[i]), "conf_upper": float(chi[i]), "noise": noise})
    return pd.DataFrame(rows, columns=["arch", "kind", "law", "decades beyond", "x", "predicted", "lower", "upper",
                                       "conf_lower", "conf_upper", "noise"])


__all__ = ["REACH_DECADES", "PredictionBand", "extrapolation", "forecast", "seed_noise"]
