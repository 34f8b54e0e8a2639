"""Compute-optimal allocation from a joint fit: N* ∝ C^a, D* ∝ C^b.

Minimising E + A N^-alpha + B D^-beta at fixed compute C = 6 N D gives
a = beta/(alpha+beta), b = alpha/(alpha+beta) and N*(C) = G (C/6)^a, D*(C) = (C/6)^b / G
with G = (alpha A / (beta B))^(1/(alpha+beta)) (Hoffmann et al. 2022, eq. 4).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from matscale.errors import FitError
from matscale.fit.result import FitResult


def _exponents(alpha, beta, A, B):
    s = alpha + beta
    return beta / s, alpha / s, (alpha * A / (beta * B)) ** (1.0 / s)


def compute_optimal(joint_fit: FitResult, C=None, flops_per_param_token: float = 6.0) -> dict:
    """a, b (with stderr and interval at the fit's level) and G; N_opt, D_opt at compute C.

    Uncertainty: percentiles of the bootstrap draws when the fit was bootstrapped, else the
    delta method on the covariance of (alpha, beta) (normal interval). `method` says which.
    """
    if joint_fit.law != "joint":
        raise FitError(f"compute_optimal needs a joint fit (law 'joint'), not {joint_fit.law!r}")
    v = joint_fit.values
    a, b, G = _exponents(v["alpha"], v["beta"], v["A"], v["B"])
    level = joint_fit.ci_level
    out = {"a": float(a), "b": float(b), "G": float(G), "level": level}
    if joint_fit.samples is not None:
        s = joint_fit.samples
        a_s, _, G_s = _exponents(s["alpha"].to_numpy(), s["beta"].to_numpy(), s["A"].to_numpy(), s["B"].to_numpy())
        lo, hi = np.quantile(a_s, [(1 - level) / 2, (1 + level) / 2])
        se = float(np.std(a_s, ddof=1))
        out["method"] = f"bootstrap percentile ({len(a_s)} draws)"
        out["G_ci"] = [float(x) for x in np.quantile(G_s, [(1 - level) / 2, (1 + level) / 2])]
    elif joint_fit.covariance is not None:
        cov = joint_fit.covariance.loc[["alpha", "beta"], ["alpha", "beta"]].to_numpy()
        s = v["alpha"] + v["beta"]
        grad = np.array([-v["beta"] / s**2, v["alpha"] / s**2])
        se = float(np.sqrt(grad @ cov @ grad))
        z = stats.norm.ppf((1 + level) / 2)
        lo, hi = a - z * se, a + z * se
        out["method"] = "delta method on the covariance of (alpha, beta)"
    else:
        raise FitError("the joint fit has no error bars, so a and b have none; refit with bootstrap")
    out.update(a_stderr=se, a_ci=[float(lo), float(hi)], b_stderr=se, b_ci=[float(1 - hi), float(1 - lo)])
    if C is not None:
        C = np.asarray(C, dtype=float)
        out["N_opt"] = G * (C / flops_per_param_token) ** a
        out["D_opt"] = (C / flops_per_param_token) ** b / G
    return out
