"""Profile-likelihood confidence intervals on the *reported* parameters.

Like `lmfit.conf_interval`, but the profiled quantity is the parameter in the user's units
(A, x_c, ...), not lmfit's internal one: for each trial value the law's linear relation
pins one internal parameter and every other parameter is refitted (`engine.fast_fit`).
The interval ends where chi2 rises by the threshold:

- sigma given as a real spread (absolute): delta chi2 = chi2_1(level)      (Wilks);
- otherwise (noise scale estimated): delta chi2 = s^2 F(level; 1, n-k), s^2 = chi2_min/(n-k)
  — the same F-test lmfit's conf_interval uses.

Each end is bracketed by stepping out from the Wald end (or geometrically when there is no
covariance), then found by `brentq` on the signed root sqrt(chi2 - chi2_min) - sqrt(delta),
which is nearly linear in the parameter, so a few refits suffice. An end that runs into the
constraint E >= 0 stops there; one that never closes is reported as open (None).
"""
from __future__ import annotations

import numpy as np
from scipy import optimize, stats

from matscale.fit.engine import Problem, Solution, fast_fit

_HARD_FLOORS = ("E", "L_inf")  # constraint >= 0 is physical: an interval may end on it


def threshold(problem: Problem, chi2_min: float, level: float) -> float:
    """Rise of chi2 above its minimum that bounds the `level` profile interval."""
    dof = problem.n - problem.k
    if not problem.scale_covar:
        return float(stats.chi2.ppf(level, 1))
    return float(chi2_min / dof * stats.f.ppf(level, 1, dof))


def _root(h, inner: float, outer: float, xtol: float) -> float | None:
    """Crossing of h between inner (h < 0) and outer (h > 0); bisection where refits fail."""
    a, b = min(inner, outer), max(inner, outer)
    try:
        if np.isfinite(h(outer)) and h(inner) < 0:
            return optimize.brentq(h, a, b, xtol=xtol)
        if h(inner) < 0:  # the refit failed out there: bisect, counting failures as beyond
            return optimize.bisect(lambda z: 1.0 if not np.isfinite(h(z)) else h(z), a, b, xtol=2 * xtol)
    except (ValueError, RuntimeError):
        pass
    return None


def profile_interval(problem: Problem, sol: Solution, name: str, level: float,
                     step: float | None) -> tuple[float | None, float | None, list[str]]:
    """(low, high, notes) for reported parameter `name`; None marks an open end.

    `step`: standard error of g(value) (ln value for positive parameters) from the
    covariance, used to place the first trial points; None when there is no covariance.
    """
    law = problem.law
    r = law.names.index(name)
    rep = law.reported[r]
    M, b = law.linear_map(problem.ln_ref)
    z_hat = float(M[r] @ sol.theta + b[r])  # g(value): ln for positive parameters
    delta = threshold(problem, sol.chi2, level)
    # the pivot's bounds bound z when the pivot is the only internal parameter involved
    only_pivot = np.count_nonzero(M[r]) == 1
    lo_b, hi_b = problem.bounds.get(rep.pivot, (-np.inf, np.inf)) if only_pivot else (-np.inf, np.inf)
    p_coef = M[r, law.internal.index(rep.pivot)]  # 1, or y_ref for a floor of rescaled losses
    z_lo, z_hi = p_coef * lo_b + b[r], p_coef * hi_b + b[r]

    # signed root: sqrt(chi2 rise) is nearly linear in z, so brentq needs few refits
    root_delta = float(np.sqrt(delta))
    scale = 1.0 if not problem.scale_covar else sol.chi2 / (problem.n - problem.k)
    if step is not None and np.isfinite(step) and step > 0:
        wald_half = step * root_delta / np.sqrt(scale)  # where the quadratic approximation ends
        distances = wald_half * np.array([1.0, 1.5, 2.5, 4.0, 8.0, 16.0, 32.0, 64.0])
    else:  # no covariance to guess the width from: search outwards geometrically
        distances = 1e-4 * max(abs(z_hat), 1.0) * 4.0 ** np.arange(16)
    cache: dict[float, float] = {}
    warm = {"theta": sol.theta}

    p_idx = law.internal.index(rep.pivot)

    def excess(z: float) -> float:
        if z in cache:
            return cache[z]
        out = fast_fit(problem, warm["theta"], pin=(p_idx, M[r], z - b[r]))
        if out is None:
            h = np.inf
        else:
            theta = out[0]
            rr = problem.residuals(theta)
            h = float(np.sqrt(max(float(rr @ rr) - sol.chi2, 0.0))) - root_delta
            warm["theta"] = theta
        cache[z] = h
        return h

    notes: list[str] = []
    ends = []
    for sign in (-1.0, 1.0):
        warm["theta"] = sol.theta
        edge = z_lo if sign < 0 else z_hi
        inner, end, failed = z_hat, None, False
        for dist in distances:
            z = z_hat + sign * dist
            hit_edge = (sign < 0 and z <= edge) or (sign > 0 and z >= edge)
            if hit_edge:
                z = edge
            h = excess(z)
            if h > 0:
                end = _root(excess, inner, z, 0.003 * abs(z - z_hat))
                failed = end is None
                break
            inner = z
            if hit_edge:
                break
        side = "lower" if sign < 0 else "upper"
        if failed:
            notes.append(f"{name}: the profile refits failed on the {side} side; that end is left open")
        elif end is None:
            if rep.pivot in _HARD_FLOORS and np.isfinite(edge):
                end = edge
                notes.append(f"{name}: the {side} end of the interval is the constraint {name} >= 0")
            else:
                notes.append(f"{name}: the profile interval is open on the {side} side (the data do not bound it)")
        ends.append(end)
    with np.errstate(over="ignore"):  # an end beyond float range is an open end (inf)
        conv = [None if e is None else (float(np.exp(e)) if rep.log else float(e)) for e in ends]
    return conv[0], conv[1], notes
