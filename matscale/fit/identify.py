"""When is a fitted law identified by its points? One rule, used everywhere a fit is shown.

A law is NOT identified (its parameters are not determined by these points, so no number of
it may be shown as a measurement) when any of these holds:

- fewer points than parameters + 2 (AICc is undefined and one point of slack is too little);
- a parameter sits on a bound of the fit (a floor E / L_inf at 0, a break at the edge of
  the range it may take): the optimum is the bound, not a value the data chose;
- a standard error is missing or not finite, or above |value| (for positive, log-scale
  parameters — amplitudes, breaks — above one decade, ln 10 in ln value: an amplitude at
  x = 1 extrapolates far beyond the data, so its absolute error is large even in a good fit);
- a 95% interval (when intervals were computed) is open on a side, was not found, or ends on
  a bound (e.g. a floor whose interval reaches the constraint E >= 0).

`identification(fit)` returns (identified, reasons) with short reasons such as
"L_inf on its bound", "fewer than 6 points (5)", "F: stderr above |value|"; FitResult's
`identified`, `why_not` and `note` call it.
"""
from __future__ import annotations

import math

import numpy as np

LN10 = math.log(10.0)
# warning texts the identification reasons already cover (so a fit's note does not repeat them)
COVERED = ("sits on its bound", "sits on a bound", "sits at the edge", "poorly determined", "profile interval is open",
           "profile refits failed", "end of the interval is the constraint", "is not identified by these data",
           "standard errors are not finite", "could not estimate the covariance")


def _finite(v) -> bool:
    return v is not None and math.isfinite(float(v))


def identification(fit) -> tuple[bool, list[str]]:
    """(identified, short reasons why not) for a FitResult (see the module docstring)."""
    why: list[str] = []
    k, n = fit.n_params, fit.n_points
    if n < k + 2:
        why.append(f"fewer than {k + 2} points ({n})")
    for name in getattr(fit, "at_bounds", ()) or ():
        why.append(f"{name} on its bound")
    log_names = set(getattr(fit, "log_params", ()) or ())
    intervals = fit.ci_method not in (None, "none")
    for name, p in fit.params.items():
        if name in (getattr(fit, "at_bounds", ()) or ()):
            continue  # already said
        if not _finite(p.stderr):
            why.append(f"{name}: no finite stderr")
        elif name in log_names:
            if p.value > 0 and p.stderr / p.value > LN10:
                why.append(f"{name}: stderr above a decade")
        elif p.stderr > abs(p.value):
            why.append(f"{name}: stderr above |value|")
        if intervals:
            lo, hi = p.ci_low, p.ci_high
            if not (_finite(lo) and _finite(hi)):
                why.append(f"{name}: 95% interval open")
            elif name in ("E", "L_inf") and lo <= 0.0:
                why.append(f"{name}: 95% interval reaches its bound 0")
    if not fit.errorbars and not any("stderr" in w for w in why):
        why.append("no error bars")
    return not why, why


def other_warnings(fit) -> list[str]:
    """The fit's warnings that the identification reasons do not already say (e.g. failed
    bootstrap refits), shortened to their first clause."""
    out = []
    for w in fit.warnings:
        if any(c in w for c in COVERED):
            continue
        out.append(w.split(";")[0].split(":")[0].strip())
    return out


def note(fit) -> str:
    """One short note per fit: why it is not identified, and any other warning ('' if none)."""
    ok, why = identification(fit)
    parts = ([] if ok else ["not identified: " + "; ".join(why)]) + other_warnings(fit)
    return "; ".join(parts)


def parameter_rows(fit, label: dict | None = None) -> list[dict]:
    """Tidy rows (law, parameter, value, stderr, ci_low, ci_high, identified) of a FitResult."""
    ok, _ = identification(fit)
    rows = []
    for name, p in fit.params.items():
        rows.append({**(label or {}), "law": fit.law, "parameter": name, "value": float(p.value),
                     "stderr": np.nan if not _finite(p.stderr) else float(p.stderr),
                     "ci_low": np.nan if not _finite(p.ci_low) else float(p.ci_low),
                     "ci_high": np.nan if not _finite(p.ci_high) else float(p.ci_high),
                     "identified": ok})
    return rows
