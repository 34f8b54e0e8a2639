"""The finding each study page opens with: one or two sentences computed from its fits and runs.

    exponent(fit, name=None) -> Estimate | None     an identified exponent (value, 95% CI) or None
    not_identified(fit) -> str | None               why a fit's exponent is not identified
    scaling(fits, kind)        "EquiformerV2's loss falls as D^-0.21 [0.15, 0.27]; ..."
    frontier(fronts), joint(joint_fits), convergence(curves), study(table), equivariance(eq)
    flops_rates(table) -> DataFrame;  flops_caveat(rates) -> str   FLOPs per wall-second by arch

An exponent counts as identified only when its fit says so (`identified`, falling back to
`ok` for fits that do not carry the flag) AND its 95% interval is finite on both sides; the
sentence then says "not identified" with the fit's own reason (`why_not`, else `reason`).
Nothing here is written by hand: every number comes from the fits passed in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

ARCH_NAMES = {"schnet": "SchNet", "equiformer_v2": "EquiformerV2", "transformer": "the transformer",
              "fcn": "the per-atom MLP", "esen": "eSEN", "escaip": "EScAIP", "linear": "the linear baseline"}
SYMBOLS = {"data": ("D", "β"), "params": ("N", "α"), "compute": ("C", "γ")}  # the published letters
WHAT = {"data": "data", "params": "parameters", "compute": "compute"}


def name(arch: str, start: bool = False) -> str:
    """Display name of an architecture ('equiformer_v2' -> 'EquiformerV2'), capitalised at a sentence start."""
    text = ARCH_NAMES.get(arch, arch)
    return text[0].upper() + text[1:] if start else text


def short(arch: str) -> str:
    """The name before a size ('the transformer' -> 'transformer', as in 'transformer-s')."""
    return ARCH_NAMES.get(arch, arch).removeprefix("the ")


@dataclass(frozen=True)
class Estimate:
    """An identified exponent: value, standard error (NaN if unknown) and its finite 95% interval."""

    value: float
    low: float
    high: float
    stderr: float = math.nan

    def text(self, digits: int = 2) -> str:
        f = lambda v: f"{v:.{digits}f}".replace(f"-{0:.{digits}f}", f"{0:.{digits}f}")  # noqa: E731  no "-0.00"
        return f"{f(self.value)} [{f(self.low)}, {f(self.high)}]"

    @property
    def includes_zero(self) -> bool:
        return self.low <= 0 <= self.high


def _finite(v) -> bool:
    return v is not None and np.isfinite(float(v))


def _param_name(fit, name: str | None) -> str | None:
    if name is not None:
        return name
    return getattr(fit, "exponent", None) or ("gamma" if hasattr(fit, "front") else None)


_PREFIXES = ("not identified by these points: ", "not identified: ")


def _why(obj) -> str | None:
    why = getattr(obj, "why_not", None)
    if isinstance(why, (list, tuple)):
        why = "; ".join(str(w) for w in why)
    return why or None


def _clean(why: str | None) -> str | None:
    """A reason without a leading 'not identified: ' (the sentence says that already)."""
    for prefix in _PREFIXES:
        if why and why.startswith(prefix):
            return why[len(prefix):]
    return why


def not_identified(fit, name: str | None = None) -> str | None:
    return _clean(_not_identified(fit, name))


def brief(why: str | None) -> str:
    """A reason short enough for a page's opening sentence (the tables below give the details)."""
    text = why or ""
    if "zero-force baseline" in text:
        return "it does not beat the zero-force baseline, so no law is fitted to its plateau"
    if "not a grid" in text:
        return "its runs are not a grid"
    if "fewer than" in text and "stderr" not in text and "interval" not in text:
        return "too few points for the law's parameters"
    if not text or text.startswith("no ") or "finished" in text or (len(text) <= 120 and text.count("(") <= 1):
        return text or "no fit"
    return "these points do not bound its parameters; see the tables below"


def _not_identified(fit, name: str | None = None) -> str | None:
    """None when the fit's exponent `name` (default: the fit's own) is identified, else why not.

    `fit` is a page-level fit (SeriesFit, FrontierFit, JointFit: `ok`, `reason`, `fit`) whose
    `identified` / `why_not` are used when it has them, as are those of the law it holds
    (`fit.fit.identified`, `fit.fit.why_not`: a string or a list of reasons)."""
    if fit is None:
        return "no fit"
    flag = getattr(fit, "identified", None)
    if flag is None:
        flag = bool(getattr(fit, "ok", False))
    why = _why(fit) or getattr(fit, "reason", None)
    if not flag:
        return why or "the fit is not identified"
    result = getattr(fit, "fit", None)
    if result is not None and getattr(result, "identified", None) is False:
        return _why(result) or why or "the fit is not identified"
    pname = _param_name(fit, name)
    p = getattr(result, "params", {}).get(pname) if result is not None and pname else None
    if p is None:
        return why or "the fit has no exponent"
    if not (_finite(p.value) and _finite(p.ci_low) and _finite(p.ci_high)):
        return f"the 95% interval of {pname} is open"
    if getattr(fit, "identified", None) is None and getattr(result, "identified", None) is None:
        return _unbounded(result.params, pname)  # no flag anywhere: check every parameter here
    return None


def _unbounded(params: Mapping, exponent: str) -> str | None:
    """Why a fit's parameters are not pinned down (stderr above |value|, an interval collapsed onto a
    bound, an open interval), or None. Used for fits that carry no `identified` flag of their own.
    The exponent itself is exempt from the stderr rule: one measured as 0.00 ± 0.01 is identified
    (as no measurable change), not unbounded."""
    for pname, p in params.items():
        if not _finite(p.value):
            return f"{pname} has no finite value"
        if pname != exponent and _finite(p.stderr) and float(p.stderr) > abs(float(p.value)):
            return f"{pname} = {float(p.value):.3g} ± {float(p.stderr):.2g}: its error exceeds its value"
        if _finite(p.ci_low) and _finite(p.ci_high) and float(p.ci_low) == float(p.ci_high):
            return f"{pname} sits on its bound ({float(p.value):.3g}, a zero-width interval)"
        if p.ci_low is not None and p.ci_high is not None and not (_finite(p.ci_low) and _finite(p.ci_high)):
            return f"the 95% interval of {pname} is open"
    return None


def exponent(fit, name: str | None = None) -> Estimate | None:
    """The identified exponent `name` of a SeriesFit / FrontierFit / JointFit, or None."""
    if not_identified(fit, name) is not None:
        return None
    p = fit.fit.params[_param_name(fit, name)]
    stderr = float(p.stderr) if _finite(p.stderr) else math.nan
    return Estimate(float(p.value), float(p.ci_low), float(p.ci_high), stderr)


def _rank(estimates: Mapping[str, Estimate], what: str) -> str:
    """Which architecture's exponent is largest, when the intervals tell them apart."""
    if len(estimates) < 2:
        return ""
    order = sorted(estimates, key=lambda a: estimates[a].value, reverse=True)
    top, second = order[0], order[1]
    if estimates[top].low > estimates[second].high:
        return (f" {name(top, True)} scales fastest with {what}: its interval lies above "
                f"{name(second)}'s.")
    return (f" The intervals of {name(top)} and {name(second)} overlap, so these points do not "
            f"tell which scales faster with {what}.")


def _flat(estimates: Mapping[str, Estimate]) -> str:
    flat = [a for a, e in estimates.items() if e.includes_zero]
    if not flat:
        return ""
    return f" For {_join([name(a) for a in flat])} the interval includes 0: no measurable change."


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def scaling(fits: Mapping[str, object], kind: str) -> str:
    """The data ("data") or parameter ("params") page's finding from its {arch: SeriesFit}."""
    (symbol, letter), what = SYMBOLS[kind], WHAT[kind]
    parts, found = [], {}
    for arch, s in fits.items():
        e = exponent(s)
        if e is None:
            parts.append(f"{name(arch, not parts)}'s exponent is not identified ({brief(not_identified(s))})")
            continue
        found[arch] = e
        law = getattr(s, "law", None)
        parts.append(f"{name(arch, not parts)}'s loss falls as {symbol}^-{letter} with {letter} = {e.text()}"
                     + (f" ({law} law)" if law else "") + _floor(s))
    if not parts:
        return f"No architecture has a {what} series to fit yet."
    return "; ".join(parts) + (" (95% intervals)." if found else ".") + _rank(found, what) + _flat(found)


def _floor(s) -> str:
    """', towards a floor E = v [lo, hi]' for a law with an identified floor, else ''."""
    params = getattr(getattr(s, "fit", None), "params", {}) or {}
    for key in ("E", "L_inf"):
        p = params.get(key)
        if p is not None and _finite(p.value) and _finite(p.ci_low) and _finite(p.ci_high) and p.ci_low > 0:
            return f", towards a floor {key} = {Estimate(float(p.value), float(p.ci_low), float(p.ci_high)).text()}"
    return ""


def saturation(fits: Mapping[str, object]) -> str:
    """Where a series stops improving: its loss drop over the first step of x and over the rest,
    against the seed spread (mean relative standard deviation of its multi-seed points)."""
    parts = []
    for arch, s in fits.items():
        pts = getattr(s, "points", None)
        if pts is None or len(pts) < 3 or not {"mean", "std"} <= set(pts):
            continue
        x = pts[getattr(s, "x", pts.columns[0])].to_numpy(dtype=float)
        m, sd = pts["mean"].to_numpy(dtype=float), pts["std"].to_numpy(dtype=float)
        first, rest = 1 - m[1] / m[0], 1 - m[-1] / m[1]
        spread = np.nanmean(sd / m) if np.isfinite(sd).any() else math.nan
        noise = f" (seed spread ±{spread:.0%})" if np.isfinite(spread) else ""
        unit = {"n_train": " structures", "params": " parameters"}.get(getattr(s, "x", ""), "")
        parts.append(f"{name(arch, not parts)}'s loss falls {first:.0%} from {x[0]:,.0f} to {x[1]:,.0f}{unit} and "
                     f"{rest:.0%} more from there to {x[-1]:,.0f}{noise}")
    return ("; ".join(parts) + ".") if parts else ""


def frontier(fronts: Mapping[str, object]) -> str:
    """The compute page's finding: gamma of each architecture's frontier, or why not."""
    parts, found = [], {}
    for arch, f in fronts.items():
        e = exponent(f, "gamma")
        if e is None:
            parts.append(f"{name(arch, not parts)}'s compute exponent is not identified "
                         f"({brief(not_identified(f, 'gamma'))})")
        else:
            found[arch] = e
            parts.append(f"{name(arch, not parts)}'s frontier falls as C^-γ with γ = {e.text()}")
    if not parts:
        return "No architecture has a compute frontier yet."
    return "; ".join(parts) + (" (95% intervals)." if found else ".") + _rank(found, "compute")


def joint(joint_fits: Mapping[str, object]) -> str:
    """The joint page's finding: alpha (N) and beta (D) of each joint law, or why not."""
    parts = []
    for arch, j in joint_fits.items():
        a, b = exponent(j, "alpha"), exponent(j, "beta")
        if a is None or b is None:
            why = not_identified(j, "alpha" if a is None else "beta")
            parts.append(f"{name(arch, not parts)}'s joint law is not identified ({brief(why)})")
        else:
            parts.append(f"{name(arch, not parts)}: L = E + A N^-α + B D^-β with α = {a.text()} and β = {b.text()}")
    return ("; ".join(parts) + ".") if parts else "No architecture has runs for a joint law yet."


# -- runs ----------------------------------------------------------------------------------------------
def convergence_table(curve_rows: pd.DataFrame) -> pd.DataFrame:
    """Per run with >= 2 validations: whether its best validation is the last one, and the relative
    drop of the validation loss between its last two validations (positive: still falling)."""
    rows = []
    if len(curve_rows) and "val_loss" in curve_rows:
        for run_id, c in curve_rows.groupby("run_id", sort=False):
            v = c["val_loss"].to_numpy(float)
            v = v[np.isfinite(v)]
            if len(v) < 2:
                continue
            rows.append({"run_id": run_id, "arch": c["arch"].iloc[0], "validations": len(v),
                         "best_is_last": bool(v[-1] <= v.min()), "last_drop": float((v[-2] - v[-1]) / v[-2])})
    return pd.DataFrame(rows, columns=["run_id", "arch", "validations", "best_is_last", "last_drop"])


def convergence(curve_rows: pd.DataFrame) -> str:
    """'In 30 of 37 runs the best checkpoint is the last validation ...' (from the metrics rows)."""
    t = convergence_table(curve_rows)
    if t.empty:
        return "No run has two validations yet, so nothing can be said about convergence."
    last = t[t["best_is_last"]]
    text = f"In {len(last)} of {len(t)} runs the best checkpoint is the last validation"
    if len(last):
        d = 100 * last["last_drop"]
        text += (f"; there the validation loss still fell by a median {d.median():.0f}% "
                 f"(range {d.min():.0f}–{d.max():.0f}%) between the last two validations")
    falling = int((t["last_drop"] > 0.02).sum())
    return (text + f". {falling} of {len(t)} runs were still improving by more than 2% at their last validation"
            + (": their loss measures the training budget, not a converged model." if falling > len(t) / 2 else "."))


def study(table: pd.DataFrame) -> str:
    """The study page's finding: how much of the plan is done and how many seeds a point has."""
    from matscale.study.results import trainable

    done = table[table["finished"]]
    failed, missing = int((table["status"] == "failed").sum()), int((table["status"] == "missing").sum())
    text = f"{len(done)} of {len(table)} planned runs are finished"
    extra = ([f"{failed} failed"] if failed else []) + ([f"{missing} not run yet"] if missing else [])
    text += f" ({', '.join(extra)})." if extra else "."
    t = trainable(done)
    if len(t):
        seeds = t.groupby(["arch", "size", "frac"])["seed"].nunique().groupby("arch").agg(["min", "max"])
        per = ", ".join(f"{name(a)} {int(r['min'])}" + (f"–{int(r['max'])}" if r["max"] != r["min"] else "")
                        for a, r in seeds.iterrows())
        text += f" Seeds per point: {per}; {t['wall_s'].sum() / 60:.0f} minutes and {t['flops'].sum():.2g} FLOPs of training."
    return text


def equivariance(eq: pd.DataFrame) -> str:
    """The equivariance page's finding: the median relative force error under rotation per arch."""
    if eq is None or eq.empty or "forces_rel" not in eq:
        return "No rotation measurements are stored for this study's runs."
    med = eq.groupby("arch")["forces_rel"].median().sort_values()
    parts = [f"{name(a)} {v:.2g}" for a, v in med.items()]
    return ("Median relative force error under rotation (0: exactly equivariant): " + ", ".join(parts) + ".")


# -- compute is not cost --------------------------------------------------------------------------------
def flops_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Training FLOPs per wall-second of each architecture's finished runs (summary `flops` /
    whole-run `wall_s`): median, lowest and highest over its runs, and the runs counted."""
    from matscale.study.results import trainable

    d = trainable(table[table["finished"]])
    d = d[(d["flops"] > 0) & (d["wall_s"] > 0)]
    rate = (d["flops"] / d["wall_s"]).rename("rate")
    out = pd.concat([d["arch"], rate], axis=1).groupby("arch", sort=False)["rate"].agg(
        ["median", "min", "max", "count"])
    return out.rename(columns={"median": "median FLOPs/s", "min": "lowest FLOPs/s", "max": "highest FLOPs/s",
                               "count": "runs"})


def flops_caveat(rates: pd.DataFrame) -> str:
    """The caveat under every cross-architecture FLOPs axis, with the measured ratios."""
    if len(rates) < 2:
        return "Fewer than two architectures have finished runs, so FLOPs per second cannot be compared."
    med = rates["median FLOPs/s"]
    fast, slow = med.idxmax(), med.idxmin()
    spread = rates["highest FLOPs/s"].max() / rates["lowest FLOPs/s"].min()
    return (f"**FLOPs are not cost.** Counted training FLOPs per wall-second differ between architectures: "
            f"the medians run from {med[slow]:.2g} ({name(slow)}) to {med[fast]:.2g} ({name(fast)}), "
            f"{med[fast] / med[slow]:.1f}x, and single runs span {spread:.0f}x (small models spend most of "
            "their time outside the matrix products that are counted). Equal FLOPs on the axis below are "
            "therefore not equal wall time, and the cross-architecture FLOPs axis is not a cost axis.")


def architectures(data_fits: Mapping[str, object], param_fits: Mapping[str, object], table: pd.DataFrame) -> str:
    """The comparison page's finding: the lowest loss reached, and which exponents the study can rank."""
    from matscale.study.results import Y, baselines, trainable

    done = trainable(table[table["finished"]])
    done = done[np.isfinite(done[Y])]
    if done.empty:
        return "No finished runs yet."
    best = done.loc[done[Y].idxmin()]
    text = f"The lowest validation loss is {short(best['arch'])}-{best['size']}'s ({best[Y]:.3g})"
    base = baselines(table)
    text += f", against {base[Y].min():.3g} for the linear baseline." if len(base) else "."
    for fits, what in ((data_fits, "data"), (param_fits, "parameters")):
        found = {a: e for a, e in ((a, exponent(s)) for a, s in fits.items()) if e is not None}
        missing = [name(a) for a in fits if a not in found]
        text += _rank(found, what) if len(found) >= 2 else ""
        if missing:
            text += f" Not identified ({what}): {', '.join(missing)}."
    return text


def parity(errors: pd.DataFrame) -> str:
    """The parity page's finding: each architecture's best run and its errors in physical units
    (the `... MAE (unit)` columns of `matscale.parity.parity_page`'s table)."""
    if errors is None or errors.empty:
        return "No best run of this study has weights here, so nothing was predicted."
    maes = [c for c in errors.columns if " MAE (" in c]
    parts = []
    for r in errors.to_dict("records"):
        errs = ", ".join(f"{c.split(' MAE (')[0]} {r[c]:.3g} {c.split(' MAE (')[1].rstrip(')')}" for c in maes)
        parts.append(f"{short(r['arch'])}-{r['size']}: {errs}")
    n = int(errors["val structures"].max()) if "val structures" in errors else 0
    return f"Mean absolute errors of each architecture's best run on {n} validation structures: " + "; ".join(parts) + "."


def datasets(summary: pd.DataFrame, order: list[str]) -> str:
    """The teacher page's finding: each architecture's data exponent on each dataset (the
    `matscale.dataset_comparison` summary: dataset, arch, value, ci_low, ci_high, note)."""
    if summary is None or summary.empty:
        return "No data series has finished runs on these datasets yet."
    parts = []
    for arch, rows in summary.groupby("arch", sort=False):
        by = {r["dataset"]: r for r in rows.to_dict("records")}
        bits = []
        for ds in [d for d in order if d in by] + [d for d in by if d not in order]:
            r = by[ds]
            ok = all(_finite(r.get(k)) for k in ("value", "ci_low", "ci_high"))
            bits.append(f"{Estimate(r['value'], r['ci_low'], r['ci_high']).text()} on {ds}" if ok
                        else f"not identified on {ds} ({r.get('note') or 'no fit'})")
        parts.append(f"{name(arch, not parts)}'s data exponent β is " + ", ".join(bits))
    return "; ".join(parts) + " (95% intervals)."
