"""Presentation tables of the fits: what the book pages print.

    format_estimate(value, stderr, low, high) -> '0.312 ± 0.021 [0.27, 0.36]'  (the one formatter)
    fit_points(fits), fit_summary(fits), allocation(joint fits, budgets)
    exponent_table(data, params, frontier fits) -> every exponent, identified or not, with its note
    parameters(fits) -> tidy parameters (arch, law, parameter, value, stderr, ci_low, ci_high, identified)
    fit_notes(fits) -> one short note per fit (arch, law, note)
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
    as 'value ± stderr [95% CI]' and as numbers, AICc, identified, and a note: the reason when
    there is no fit, or which better-ranked laws these points do not identify."""
    rows = []
    for arch, s in fits.items():
        row = {"arch": arch, "fixed at": s.at, "points": len(s.points),
               "decades": round(s.span_decades(), 2) if len(s.points) > 1 else 0.0}
        if s.ok:
            p = s.fit.params[s.exponent]
            row.update({"law": s.law, "exponent": s.exponent,
                        "estimate": format_estimate(p.value, p.stderr, p.ci_low, p.ci_high),
                        "value": p.value, "stderr": p.stderr, "ci_low": p.ci_low, "ci_high": p.ci_high,
                        "AICc": s.fit.aicc, "identified": True, "note": s.fallback or ""})
        else:
            row.update({"law": None, "exponent": None, "estimate": "—", "value": np.nan, "stderr": np.nan,
                        "ci_low": np.nan, "ci_high": np.nan, "AICc": np.nan, "identified": False, "note": s.reason})
        rows.append(row)
    return pd.DataFrame(rows)


def parameters(fits: Mapping[str, object]) -> pd.DataFrame:
    """Tidy parameter table of each arch's shown fit (SeriesFit, FrontierFit or JointFit with a
    fit): arch, law, parameter, value, stderr, ci_low, ci_high (95% CI, NaN where open),
    identified. A fit that is not identified shows no parameters (its reason says why)."""
    frames = [f.fit.parameters(arch=arch) for arch, f in fits.items() if getattr(f, "fit", None) is not None]
    cols = ["arch", "law", "parameter", "value", "stderr", "ci_low", "ci_high", "identified"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def fit_notes(fits: Mapping[str, object]) -> pd.DataFrame:
    """One short note per arch's fit: arch, law, note (why there is no identified fit, the AICc
    fallback, and any other warning of the shown fit)."""
    rows = []
    for arch, f in fits.items():
        fit = getattr(f, "fit", None)
        parts = [f.reason] if fit is None and f.reason else []
        parts.append(getattr(f, "fallback", None) or next((n for n in getattr(f, "notes", []) if "fallback" in n), ""))
        parts += [fit.note] if fit is not None else []
        note = "; ".join(dict.fromkeys(p.rstrip(".") for p in parts if p))
        rows.append({"arch": arch, "law": getattr(f, "law", None) or (fit.law if fit is not None else None),
                     "note": note})
    return pd.DataFrame(rows, columns=["arch", "law", "note"])


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
                row["compute law"] = f.law
            else:
                row["compute exponent γ"], row["compute law"] = "—", "—"
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
        flat = [n for n in notes if "does not beat the zero-force baseline" in n]
        row["notes"] = flat[0].split(": ", 1)[1] if flat else "; ".join(notes)  # one plateau reason says it all
        rows.append(row)
    return pd.DataFrame(rows).set_index("arch")


def exponent_table(data_fits: Mapping[str, SeriesFit], param_fits: Mapping[str, SeriesFit],
                   frontier_fits: Mapping[str, FrontierFit] | None = None) -> pd.DataFrame:
    """Every arch's data, parameter and compute exponent, identified or not (for a findings
    table): arch, exponent ("data (D)", "parameters (N)", "compute (C)"), law, value, stderr,
    ci_low, ci_high (95%), identified, note (the reason when there is no identified law, or the
    AICc fallback)."""
    rows = []
    groups = [("data (D)", data_fits), ("parameters (N)", param_fits), ("compute (C)", frontier_fits or {})]
    for label, fits in groups:
        for arch, f in fits.items():
            compute = isinstance(f, FrontierFit)
            note = f.reason if not f.ok else ("; ".join(f.notes) if compute else f.fallback or "")
            row = {"arch": arch, "exponent": label, "law": f.law if f.ok else None, "value": np.nan,
                   "stderr": np.nan, "ci_low": np.nan, "ci_high": np.nan, "identified": f.ok, "note": note}
            if f.ok:
                p = f.fit.params["gamma" if compute else f.exponent]
                row.update(value=p.value, stderr=p.stderr, ci_low=p.ci_low, ci_high=p.ci_high)
            rows.append(row)
    return pd.DataFrame(rows, columns=["arch", "exponent", "law", "value", "stderr", "ci_low", "ci_high", "identified",
                                       "note"])


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


def frontier_table(fronts: Mapping[str, FrontierFit]) -> pd.DataFrame:
    """One row per arch: runs, points on its Pareto front, gamma / L_inf / F as estimates (or why not)."""
    rows = []
    for arch, f in fronts.items():
        row = {"arch": arch, "runs": f.curves["run_id"].nunique() if len(f.curves) else 0, "front points": len(f.front)}
        if f.ok:
            row["law"] = f.fit.formula
            for name in ("gamma", "L_inf", "F"):
                p = f.fit.params.get(name)
                row[name] = "— (no floor in this law)" if p is None else format_estimate(p.value, p.stderr, p.ci_low,
                                                                                          p.ci_high)
            row["note"] = "; ".join(f.notes)
        else:
            row["note"] = f.reason
        rows.append(row)
    return pd.DataFrame(rows).set_index("arch") if rows else pd.DataFrame()


def allocation_exponents(joint_fits: Mapping[str, JointFit]) -> pd.DataFrame:
    """a and b of N* ∝ C^a, D* ∝ C^b per arch (estimates), its k (FLOPs per parameter per
    structure) and the interval method, or why there is no allocation."""
    rows = []
    for arch, j in joint_fits.items():
        row = {"arch": arch, "a (N* ∝ C^a)": "—", "b (D* ∝ C^b)": "—", "k (FLOPs / parameter / structure)": j.k,
               "interval method": j.reason or "; ".join(j.notes)}
        if j.ok and j.optimal:
            o = j.optimal
            row.update({"a (N* ∝ C^a)": format_estimate(o["a"], o["a_stderr"], *o["a_ci"]),
                        "b (D* ∝ C^b)": format_estimate(o["b"], o["b_stderr"], *o["b_ci"]),
                        "interval method": o["method"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("arch") if rows else pd.DataFrame()


def extrapolation_points(s: SeriesFit, held_x: float) -> pd.DataFrame:
    """A series' points for the extrapolation chart: x, val_loss (mean), sigma, held_out."""
    pts = s.points.rename(columns={"mean": Y}).assign(held_out=lambda d: d[s.x] == held_x)
    pts["sigma"] = pts["std"].fillna(0.0)
    return pts


def equivariance_points(eq: pd.DataFrame, table: pd.DataFrame, archs, kind: str) -> pd.DataFrame:
    """The force equivariance error along each arch's parameter ("params") or data ("data")
    series: one point per setting (seeds averaged with `aggregate`), x named as in the charts."""
    from matscale.study.results import AXES, SETTING, aggregate, series

    x, label = AXES[kind], {"params": "non_embedding_parameters", "n_train": "training_structures"}[AXES[kind]]
    frames = []
    for arch in archs:
        ids = series(table, arch, kind)["run_id"]
        runs = eq[eq["run_id"].isin(ids) & (eq["arch"] == arch)]
        if len(runs):
            pts = aggregate(runs, x, "forces_rel", by=SETTING[kind])
            frames.append(pts.rename(columns={"mean": "forces_rel", "std": "sigma", x: label}).assign(arch=arch))
    if not frames:
        return pd.DataFrame(columns=["arch", label, "forces_rel", "sigma", "n"])
    return pd.concat(frames, ignore_index=True).fillna({"sigma": 0.0})


def extrapolation_summary(checks: pd.DataFrame) -> pd.DataFrame:
    """The extrapolation check in the column's width: held-out x, measured, predicted with its 95%
    prediction interval, inside or not, the relative error, and why a series has no check."""
    rows = []
    for r in checks.to_dict("records"):
        ok = r.get("predicted") is not None and np.isfinite(r.get("predicted", np.nan))
        rows.append({"arch": r["arch"], "kind": r["kind"], "law": r.get("law") if ok else "—",
                     "held-out x": r.get("x"), "measured": r.get("measured"),
                     "predicted [95% PI]": format_estimate(r.get("predicted"), None, r.get("lower"), r.get("upper"))
                     if ok else "—",
                     "inside": r.get("inside") if ok else "—",
                     "error": f"{r['rel_error']:+.0%}" if ok and np.isfinite(r.get("rel_error", np.nan)) else "—",
                     "note": r.get("noise") if ok else r.get("reason")})
    return pd.DataFrame(rows)


def budget_summary(budget: pd.DataFrame) -> pd.DataFrame:
    """The budget-sensitivity check in the column's width: the data exponent (95% CI) at the main and
    the budget steps, their difference and the verdict."""
    rows = []
    for r in budget.to_dict("records"):
        est = lambda k: format_estimate(r.get(k), None, r.get(f"{k}_low"), r.get(f"{k}_high"))  # noqa: E731
        steps = lambda k: f"{r[k]:.0f}" if r.get(k) is not None and np.isfinite(r[k]) else "?"  # noqa: E731
        if r.get("verdict") is None or (isinstance(r.get("verdict"), float) and np.isnan(r["verdict"])):
            rows.append({"arch": r["arch"], "law": "—", "points": r.get("points"), "alpha (main steps)": "—",
                         "alpha (budget steps)": "—", "difference": "—", "verdict": r.get("reason")})
            continue
        rows.append({"arch": r["arch"], "law": r.get("law"), "points": r.get("points"),
                     f"alpha ({steps('steps_main')} steps)": est("alpha_main"),
                     f"alpha ({steps('steps_budget')} steps)": est("alpha_budget"),
                     "difference": est("difference"), "verdict": r.get("verdict")})
    return pd.DataFrame(rows)
