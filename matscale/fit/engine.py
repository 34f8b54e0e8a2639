"""The estimator: residuals in linear or log space, least squares or Huber, multi-start fits.

A `Problem` is one data set ready to fit (rescaled inputs, transformed targets, weights).
`solve` screens the law's grid of starting points in one vectorised evaluation, runs a local
fit from each of the best `n_starts` distinct ones, keeps the lowest objective (so the answer
does not hinge on one initial guess) and polishes it with lmfit: that lmfit fit is the fit of
record (`Solution.result`), with its covariance and `errorbars` flag. Least squares use
Levenberg-Marquardt (`leastsq`); the Huber loss uses the trust-region
`least_squares(loss="huber")`, which minimises sum_i huber_delta(r_i) as in the Chinchilla
replication.

Refits done many times (the starts, profile points, bootstrap draws) call the same scipy
solvers directly (`fast_fit`), with lmfit's bound transformations written out in numpy:
lmfit's per-call bookkeeping (parameter copies, uncertainty propagation) costs ~10x the
numerical work on these small problems.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import lmfit
import numpy as np
from scipy import optimize

from matscale.errors import FitError
from matscale.fit.laws import Law

_BIG = 1e10  # residual returned where the model is not finite (keeps the optimiser away)


@dataclass
class Problem:
    """One data set, ready to fit: everything the objective needs."""

    law: Law
    X: dict[str, np.ndarray]  # the inputs as given (x, or N and D)
    U: dict[str, np.ndarray]  # u = ln(x / x_ref) per input
    ln_ref: dict[str, float]  # ln x_ref per input (and "y": ln y_ref when y was rescaled)
    y: np.ndarray
    sigma: np.ndarray | None  # per-point sigma of y (same units as y), or None
    log: bool = False  # residuals of ln y instead of y
    loss: str = "lsq"  # "lsq" or "huber"
    huber_delta: float = 1e-3
    absolute_sigma: bool = True  # sigma is a real spread: do not rescale the covariance
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self):
        self.gy = np.log(self.y) if self.log else self.y
        if self.sigma is None:
            self.w = np.ones_like(self.y)
        else:  # in log space sigma(ln y) ~ sigma(y) / y
            self.w = (self.y / self.sigma) if self.log else 1.0 / self.sigma
        if not self.bounds:
            self.bounds = self.law.bounds(self.U)

    @property
    def y_scale(self) -> float:
        """y_ref: the fitted y (and sigma) are the data divided by this."""
        return float(np.exp(self.ln_ref.get("y", 0.0)))

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def k(self) -> int:
        return self.law.n_params

    @property
    def scale_covar(self) -> bool:
        """Rescale the covariance by chi2/dof unless sigma is a real, absolute spread."""
        return not (self.sigma is not None and self.absolute_sigma)

    def subset(self, index: np.ndarray, y: np.ndarray | None = None, sigma=None) -> Problem:
        """The same problem on rows `index` (bootstrap), optionally with new y / sigma."""
        X = {k: v[index] for k, v in self.X.items()}
        U = {k: v[index] for k, v in self.U.items()}
        ys = self.y[index] if y is None else y
        sg = (None if self.sigma is None else self.sigma[index]) if sigma is None else sigma
        return replace(self, X=X, U=U, y=ys, sigma=sg)

    # --- objective -------------------------------------------------------------------
    def residuals(self, theta) -> np.ndarray:
        """Weighted residuals (model - data) for theta of shape (k,) or (m, k)."""
        with np.errstate(all="ignore"):
            f = self.law.model(theta, self.U)
            g = np.log(f) if self.log else f
            r = (g - self.gy) * self.w
        return np.where(np.isfinite(r), r, _BIG)

    def objective(self, r: np.ndarray) -> np.ndarray:
        """Sum over points of r^2 (lsq) or 2*huber(r) (so both equal r^2 for small r)."""
        with np.errstate(over="ignore"):  # _BIG residuals of far-off trial points square to inf: fine
            if self.loss == "huber":
                d = self.huber_delta
                a = np.abs(r)
                rho = np.where(a <= d, r * r, 2 * d * a - d * d)
            else:
                rho = r * r
            return rho.sum(axis=-1)


@dataclass
class Solution:
    """The best local fit of a problem."""

    theta: np.ndarray  # internal parameters
    objective: float  # sum of squares (lsq) or 2*sum huber (huber)
    chi2: float  # sum of squared weighted residuals
    cov: np.ndarray | None  # internal covariance (lsq only; scaled per Problem.scale_covar)
    result: lmfit.minimizer.MinimizerResult
    n_starts: int = 1
    n_agree: int = 1  # starts that reached the best objective
    at_bounds: tuple[str, ...] = ()


def _params(problem: Problem, theta0) -> lmfit.Parameters:
    params = lmfit.Parameters()
    for name, v in zip(problem.law.internal, theta0):
        lo, hi = problem.bounds.get(name, (-np.inf, np.inf))
        span = 1e-9 * max(1.0, abs(v))
        v = float(np.clip(v, lo + span if np.isfinite(lo) else lo, hi - span if np.isfinite(hi) else hi))
        params.add(name, value=v, min=lo, max=hi)
    return params


def local_fit(problem: Problem, theta0) -> lmfit.minimizer.MinimizerResult:
    """One lmfit minimisation from theta0 (internal parameters)."""
    names = problem.law.internal

    def residual(params):
        return problem.residuals(np.array([params[n].value for n in names]))

    params = _params(problem, theta0)
    mini = lmfit.Minimizer(residual, params, scale_covar=problem.scale_covar, nan_policy="raise")
    if problem.loss == "huber":
        return mini.minimize(method="least_squares", loss="huber", f_scale=problem.huber_delta, x_scale="jac")
    return mini.minimize(method="leastsq")


def theta_of(result, law: Law) -> np.ndarray:
    return np.array([result.params[n].value for n in law.internal])


def _distinct(order, thetas, n):
    chosen = []
    for i in order:
        if all(np.max(np.abs(thetas[i] - thetas[j]) / (1.0 + np.abs(thetas[j]))) > 1e-3 for j in chosen):
            chosen.append(i)
        if len(chosen) == n:
            break
    return chosen


def screen(problem: Problem, n_starts: int, extra=None) -> np.ndarray:
    """`n_starts` distinct starting points: `extra` (a caller's guess) if given, then the best
    points of the law's grid (ranked in one vectorised evaluation)."""
    cands = problem.law.candidates(problem.U, problem.y)
    cands = cands[np.all(np.isfinite(cands), axis=1)]
    if extra is not None:
        extra = np.atleast_2d(np.asarray(extra, dtype=float))
        for j, name in enumerate(problem.law.internal):
            lo, hi = problem.bounds.get(name, (-np.inf, np.inf))
            extra[:, j] = np.clip(extra[:, j], lo, hi)
        rest = screen(problem, max(n_starts - len(extra), 0)) if n_starts > len(extra) else np.empty((0, problem.k))
        return np.vstack([extra, rest])
    for j, name in enumerate(problem.law.internal):
        lo, hi = problem.bounds.get(name, (-np.inf, np.inf))
        cands[:, j] = np.clip(cands[:, j], lo, hi)
    if n_starts == 0:
        return np.empty((0, problem.k))
    if len(cands) == 0:
        raise FitError(f"could not build a starting point for law {problem.law.name!r} from these data")
    obj = problem.objective(problem.residuals(cands))
    return cands[_distinct(np.argsort(obj, kind="stable"), cands, n_starts)]


def _at_bounds(problem: Problem, theta) -> tuple[str, ...]:
    out = []
    for name, v in zip(problem.law.internal, theta):
        lo, hi = problem.bounds.get(name, (-np.inf, np.inf))
        tol = 1e-6 * (1.0 + abs(v))
        if (np.isfinite(lo) and v - lo < tol) or (np.isfinite(hi) and hi - v < tol):
            out.append(name)
    return tuple(out)


class _Transform:
    """lmfit's (MINUIT-style) bound transformations, vectorised: free p <-> bounded value."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray):
        self.lo, self.hi = lo, hi
        self.both = np.isfinite(lo) & np.isfinite(hi)
        self.low = np.isfinite(lo) & ~np.isfinite(hi)
        self.high = ~np.isfinite(lo) & np.isfinite(hi)
        self.none = not (self.both.any() or self.low.any() or self.high.any())

    def to_value(self, p):
        if self.none:
            return p
        lo, hi = self.lo, self.hi
        root = np.sqrt(p * p + 1)
        return np.where(self.both, lo + (np.sin(p) + 1) * (hi - lo) / 2,
                        np.where(self.low, lo - 1 + root, np.where(self.high, hi + 1 - root, p)))

    def to_free(self, v):
        v = np.asarray(v, dtype=float)
        if self.none:
            return v
        lo, hi = self.lo, self.hi
        v = np.clip(v, lo, hi)
        return np.where(self.both, np.arcsin(np.clip(2 * (v - lo) / (hi - lo) - 1, -1, 1)),
                        np.where(self.low, np.sqrt(np.maximum((v - lo + 1) ** 2 - 1, 0)),
                                 np.where(self.high, np.sqrt(np.maximum((hi - v + 1) ** 2 - 1, 0)), v)))


def fast_fit(problem: Problem, theta0, pin: tuple[int, np.ndarray, float] | None = None):
    """Refit from theta0 with scipy directly; (theta, objective) or None if it fails.

    `pin` = (pivot index p, row m, target t) holds m @ theta = t by solving for theta_p
    (m[p] != 0), which is how a reported parameter is fixed for a profile.
    """
    k = problem.k
    free = np.ones(k, bool)
    if pin is not None:
        p, m, target = pin
        free[p] = False
    bounds = [problem.bounds.get(n, (-np.inf, np.inf)) for n in problem.law.internal]
    lo = np.array([b[0] for b in bounds])[free]
    hi = np.array([b[1] for b in bounds])[free]
    theta = np.array(theta0, dtype=float)

    def full(phi_values):
        th = theta.copy()
        th[free] = phi_values
        if pin is not None:
            th[p] = (target - (m @ th - m[p] * th[p])) / m[p]
        return th

    try:
        with np.errstate(all="ignore"):
            if problem.loss == "huber":
                x0 = np.clip(theta[free], lo, hi)
                span = 1e-9 * (1 + np.abs(x0))
                x0 = np.where(np.isfinite(lo), np.maximum(x0, lo + span), x0)
                x0 = np.where(np.isfinite(hi), np.minimum(x0, hi - span), x0)
                ret = optimize.least_squares(lambda v: problem.residuals(full(v)), x0, bounds=(lo, hi),
                                             loss="huber", f_scale=problem.huber_delta, x_scale="jac")
                ok, vals = ret.status > 0, ret.x
            else:
                tr = _Transform(lo, hi)
                with np.errstate(all="ignore"):  # the unused branches of to_value see inf bounds
                    x0 = tr.to_free(theta[free])
                out = optimize.leastsq(lambda q: problem.residuals(full(tr.to_value(q))), x0,
                                       full_output=True)
                ok, vals = out[4] in (1, 2, 3, 4), tr.to_value(out[0])
    except (ValueError, FloatingPointError, np.linalg.LinAlgError):
        return None
    th = full(vals)
    if not (ok and np.all(np.isfinite(th))):
        return None
    return th, float(problem.objective(problem.residuals(th)))


def solve(problem: Problem, n_starts: int = 4, start=None) -> Solution:
    """Best of `n_starts` local fits from the screened grid (plus `start`), polished by lmfit."""
    starts = screen(problem, max(1, n_starts), extra=start)  # the caller's guess is always tried
    found = [r for r in (fast_fit(problem, t0) for t0 in starts) if r is not None]
    seeds = [min(found, key=lambda r: r[1])[0]] if found else []
    seeds += list(starts)  # if the quick fits failed, lmfit tries the raw starts itself
    res = theta = None
    message = "no start converged"
    for theta0 in seeds:
        try:
            cand = local_fit(problem, theta0)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:  # pragma: no cover - defensive
            message = str(exc)
            continue
        th = theta_of(cand, problem.law) if cand.success else None
        if th is not None and np.all(np.isfinite(th)):
            res, theta = cand, th
            break
        message = cand.message
    if res is None:
        raise FitError(
            f"the {problem.law.name!r} fit did not converge from {len(starts)} starting points ({message}); "
            "try another law, log space (--log), or check the data"
        )
    obj = float(problem.objective(problem.residuals(theta)))
    objs = [o for _, o in found] + [obj]
    n_agree = sum(o <= obj * (1 + 1e-6) + 1e-12 for o in objs[:-1]) if found else 1
    cov = None
    if problem.loss == "lsq" and res.errorbars and res.covar is not None:
        cov = np.asarray(res.covar, dtype=float)
        if cov.shape != (problem.k, problem.k) or not np.all(np.isfinite(cov)):
            cov = None
    r = problem.residuals(theta)
    return Solution(
        theta=theta, objective=obj, chi2=float(r @ r), cov=cov, result=res,
        n_starts=len(starts), n_agree=max(n_agree, 1), at_bounds=_at_bounds(problem, theta),
    )


def refit(problem: Problem, theta0) -> np.ndarray | None:
    """A single warm-started fit (bootstrap resamples); None if it fails."""
    out = fast_fit(problem, theta0)
    return None if out is None else out[0]
