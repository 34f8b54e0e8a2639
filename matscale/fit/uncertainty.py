"""Covariance-based uncertainty: delta-method errors, Wald intervals, confidence bands.

The internal covariance comes from lmfit (inverse Gauss-Newton Hessian, rescaled by
chi2/dof unless sigma is an absolute spread). Reported parameters are linear in the internal
ones on the g-scale (ln for amplitudes and breaks), so intervals are built on that scale and
mapped back: positive parameters get positive, asymmetric intervals.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from matscale.fit.engine import Problem


def quantile(problem: Problem, level: float) -> float:
    """Two-sided critical value: Student t with n-k dof when the noise scale is estimated."""
    p = (1 + level) / 2
    if problem.scale_covar:
        return float(stats.t.ppf(p, problem.n - problem.k))
    return float(stats.norm.ppf(p))


def reported_covariance(problem: Problem, theta, cov) -> np.ndarray:
    """Covariance of the reported parameters (delta method, exact Jacobian)."""
    J = problem.law.jacobian(theta, problem.ln_ref)
    return J @ cov @ J.T


def wald_intervals(problem: Problem, theta, cov, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) arrays: g(value) +- q * se_g, mapped back through g^-1."""
    law = problem.law
    M, b = law.linear_map(problem.ln_ref)
    z = M @ theta + b
    se = np.sqrt(np.clip(np.diag(M @ cov @ M.T), 0, None))
    q = quantile(problem, level)
    lo, hi = z - q * se, z + q * se
    logm = law.log_mask()
    return np.where(logm, np.exp(lo), lo), np.where(logm, np.exp(hi), hi)


def log_model_gradient(problem: Problem, theta, U) -> np.ndarray:
    """d ln f / d theta at the points U, by central differences: shape (n, k)."""
    law = problem.law
    k = len(theta)
    h = 1e-6 * (1.0 + np.abs(theta))
    steps = np.eye(k) * h
    up = np.log(law.model(theta + steps, U))  # (k, n)
    down = np.log(law.model(theta - steps, U))
    return ((up - down) / (2 * h[:, None])).T


def covariance_band(problem: Problem, theta, cov, U, level: float, noise_var_log=None):
    """(low, high) band of f at U from the covariance, built on ln f (always positive)."""
    lnf = np.log(problem.law.model(theta, U))
    G = log_model_gradient(problem, theta, U)
    var = np.einsum("ij,jk,ik->i", G, cov, G)
    if noise_var_log is not None:
        var = var + noise_var_log
    half = quantile(problem, level) * np.sqrt(np.clip(var, 0, None))
    return np.exp(lnf - half), np.exp(lnf + half)


def bootstrap_band(problem: Problem, theta_samples, U, level: float, noise_var_log=None):
    """(low, high) percentile band of f at U over bootstrap parameter draws."""
    lnf = np.log(problem.law.model(theta_samples, U))  # (m, n)
    q = [(1 - level) / 2, (1 + level) / 2]
    lo, hi = np.quantile(lnf, q, axis=0)
    if noise_var_log is not None:  # widen each side in quadrature by the noise
        centre = np.log(problem.law.model(np.median(theta_samples, axis=0), U))
        z = stats.norm.ppf((1 + level) / 2)
        lo = centre - np.sqrt((centre - lo) ** 2 + z * z * noise_var_log)
        hi = centre + np.sqrt((hi - centre) ** 2 + z * z * noise_var_log)
    return np.exp(lo), np.exp(hi)
