"""Presentation tables of the fits: what the book pages print.

    format_estimate(value, stderr, low, high) -> '0.312 ± 0.021 [0.27, 0.36]'  (the one formatter)
    fit_points(fits), fit_summary(fits), allocation(joint fits, budgets)
    comparison(data, params, frontier, joint fits) -> DataFrame   exponents ± CI side by side
    exponent_rows(...) (for the chart)
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from matscale.study.fits import FrontierFit, JointFit, SeriesFit
from matscale.study.results import Y


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
