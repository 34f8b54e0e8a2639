"""`fit_law` / `fit_joint`: validate data, fit with several starts, attach uncertainty.

Which interval method (``ci``):
- "auto" (default): "bootstrap" when ``bootstrap`` > 0 or for the Huber loss (whose
  covariance is not meaningful), else "profile";
- "profile": profile-likelihood intervals on the reported parameters (least squares);
- "bootstrap": percentile intervals over ``bootstrap`` resamples (200 if 0); stderr and
  correlations then also come from the draws;
- "wald": covariance (delta-method) intervals on the ln scale for positive parameters,
  cheap, used for large simulation studies;
- "none": standard errors only (least squares), no intervals.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import pandas as pd

from matscale.errors import FitError
from matscale.fit import bootstrap as boot
from matscale.fit import uncertainty
from matscale.fit.engine import Problem, Solution, solve
from matscale.fit.inputs import aggregate_replicates, as_array, check_columns
from matscale.fit.laws import AMPLITUDES, FLOORS, Y_KEY, Law, get_law
from matscale.fit.profile import profile_interval
from matscale.fit.result import FitResult, ParamEstimate

DEFAULT_BOOTSTRAP = 200
Y_DECADES = 3  # losses whose geometric mean is beyond 1e±3 are rescaled before fitting
COLLAPSED = 1e-3  # an interval narrower than this many standard errors contradicts them
CI_METHODS = ("auto", "profile", "bootstrap", "wald", "none")
_BOUND_TEXT = {
    "E": "E sits on its bound 0: the data show no floor (a law without E may do as well)",
    "L_inf": "L_inf sits on its bound 0: the data show no floor",
    "lnxc": "x_c sits at the edge of its range (one decade beyond the data): the data do not locate a break",
}


def _inputs(law: Law, x) -> dict[str, np.ndarray]:
    if law.inputs == ("x",):
        return {"x": as_array(x, "x")}
    if isinstance(x, pd.DataFrame):
        cols = [x[c] for c in law.inputs]
    elif isinstance(x, (tuple, list)) and len(x) == len(law.inputs):
        cols = list(x)
    else:
        arr = np.asarray(x, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != len(law.inputs):
            raise FitError(f"law {law.name!r} needs inputs {law.inputs}: pass a tuple of {len(law.inputs)} arrays")
        cols = list(arr.T)
    return {name: as_array(c, name) for name, c in zip(law.inputs, cols)}


def make_problem(law: Law, X: dict[str, np.ndarray], y, sigma=None, *, log=False, loss="lsq",
                 huber_delta=1e-3, absolute_sigma=None, ln_ref=None) -> Problem:
    """Validate inputs and build the Problem (x rescaled by its geometric mean)."""
    if loss not in ("lsq", "huber"):
        raise FitError(f"loss must be 'lsq' or 'huber', not {loss!r}")
    if not (huber_delta > 0):
        raise FitError(f"huber_delta must be > 0, got {huber_delta}")
    y = as_array(y, "y")
    cols = dict(X)
    cols["y"] = y
    if sigma is not None:
        sigma = as_array(np.broadcast_to(np.asarray(sigma, dtype=float), y.shape) if np.ndim(sigma) == 0 else sigma,
                         "sigma")
        cols["sigma"] = sigma
    check_columns(cols, law.n_params, law.name)
    for name in law.inputs:
        if len(law.inputs) > 1 and len(np.unique(X[name])) < 2:
            raise FitError(f"{name} takes a single value: law {law.name!r} needs several values of each input")
    distinct = len(np.unique(np.column_stack([X[i] for i in law.inputs]), axis=0))
    if distinct < law.n_params + 1:
        raise FitError(
            f"law {law.name!r} has {law.n_params} parameters but the data have only {distinct} distinct sizes; "
            "average repeated runs with replicates=True (--replicates) or add sizes"
        )
    ln_ref = dict(ln_ref or {k: float(np.mean(np.log(v))) for k, v in X.items()})
    if ln_ref.get(Y_KEY) is None:
        ln_y = y_reference(law, y)
        if ln_y:
            ln_ref[Y_KEY] = ln_y
    y_scale = float(np.exp(ln_ref.get(Y_KEY, 0.0)))
    if y_scale != 1.0:  # fit y / y_ref; the laws' linear maps turn the parameters back into units of y
        y = y / y_scale
        sigma = None if sigma is None else sigma / y_scale
        if not log:
            huber_delta = huber_delta / y_scale
    U = {k: np.log(v) - ln_ref[k] for k, v in X.items()}
    return Problem(law, X, U, ln_ref, y, sigma, log=log, loss=loss, huber_delta=huber_delta,
                   absolute_sigma=True if absolute_sigma is None else bool(absolute_sigma))


def y_reference(law: Law, y: np.ndarray) -> float:
    """ln y_ref for losses far from 1 (geometric mean beyond 1e±3), else 0 (no rescaling).

    y_ref is the power of ten nearest the geometric mean: losses of 1e-300 are fitted as
    numbers of order one (least squares on raw 1e-300 values has vanishing residuals and
    a singular Jacobian); ordinary losses are fitted exactly as given."""
    if not law.scales_with_y:
        return 0.0
    decade = float(np.round(np.mean(np.log10(y))))
    return decade * float(np.log(10.0)) if abs(decade) > Y_DECADES else 0.0


def _resolve_ci(ci: str, loss: str, bootstrap: int) -> tuple[str, int]:
    if ci not in CI_METHODS:
        raise FitError(f"ci must be one of {', '.join(CI_METHODS)}; got {ci!r}")
    if ci == "auto":
        ci = "bootstrap" if (bootstrap > 0 or loss == "huber") else "profile"
    if ci in ("profile", "wald") and loss == "huber":
        raise FitError(f"{ci} intervals need the least-squares loss; for a Huber fit use bootstrap (--bootstrap K)")
    if bootstrap < 0:
        raise FitError(f"bootstrap must be >= 0, got {bootstrap}")
    return ci, (bootstrap or DEFAULT_BOOTSTRAP) if ci == "bootstrap" else bootstrap


def finish(problem: Problem, sol: Solution, *, ci: str = "auto", bootstrap: int = 0, ci_level: float = 0.95,
           seed: int = 0, draw: Callable | None = None, data_extra: dict | None = None) -> FitResult:
    """Attach uncertainty to a solved problem and package it as a FitResult."""
    if not 0 < ci_level < 1:
        raise FitError(f"ci_level must be between 0 and 1, got {ci_level}")
    law, n, k = problem.law, problem.n, problem.k
    ci, n_boot = _resolve_ci(ci, problem.loss, bootstrap)
    names = law.names
    # uncertainty is worked out in the fitted units (y / y_ref) and scaled back at the end:
    # squares of values like 1e-300 underflow
    original = problem
    problem = replace(problem, ln_ref={key: v for key, v in problem.ln_ref.items() if key != Y_KEY})
    unit = np.array([original.y_scale if r.pivot in FLOORS + AMPLITUDES else 1.0 for r in law.reported])
    values = law.to_reported(sol.theta, problem.ln_ref)
    warnings = [_BOUND_TEXT.get(b, f"{b} sits on a bound") for b in sol.at_bounds]
    notes: list[str] = []
    stderr = lo = hi = None
    cov_rep = theta_samples = samples = None
    errorbars_note = None

    if problem.loss == "lsq":
        if sol.cov is not None:
            cov_rep = uncertainty.reported_covariance(problem, sol.theta, sol.cov)
            stderr = np.sqrt(np.clip(np.diag(cov_rep), 0, None))
        else:
            errorbars_note = ("lmfit could not estimate the covariance (singular or non-finite Jacobian at "
                              "the optimum): some parameters are not determined by these data")

    method_text = ci
    if ci == "bootstrap":
        rng = np.random.default_rng(seed)
        draw = draw or boot.draw_points(problem)
        theta_samples, failed = boot.run_bootstrap(sol, draw, n_boot, rng)
        m = len(theta_samples)
        if m >= 2 and np.allclose(theta_samples, theta_samples[0], rtol=1e-9, atol=1e-12):
            raise FitError(f"all {m} bootstrap resamples gave the same fit: the data hold fewer than 2 distinct "
                           "groups to resample (e.g. one run), so the bootstrap measures nothing; add runs or use "
                           "ci='profile' (--ci profile)")
        method_text = f"bootstrap percentile, {m} resamples"
        if failed > 0.1 * n_boot:
            warnings.append(f"{failed} of {n_boot} bootstrap refits failed; the intervals may be too narrow")
        if m < 20:
            errorbars_note = f"only {m} bootstrap refits succeeded (of {n_boot}); no reliable uncertainty"
            theta_samples = None
            stderr = None
        else:
            rep = law.to_reported(theta_samples, problem.ln_ref)
            samples = pd.DataFrame(rep, columns=names)
            stderr, lo, hi = boot.summarize(rep, ci_level)
            with np.errstate(over="ignore", invalid="ignore"):  # unbounded draws overflow: not identified
                cov_rep = np.cov(rep, rowvar=False)
            errorbars_note = None
    elif ci == "profile":
        lo, hi = np.full(k, np.nan), np.full(k, np.nan)
        M, _ = law.linear_map(problem.ln_ref)
        zse = np.sqrt(np.clip(np.diag(M @ sol.cov @ M.T), 0, None)) if sol.cov is not None else [None] * k
        for i, name in enumerate(names):
            a, b, msg = profile_interval(problem, sol, name, ci_level, zse[i])
            lo[i] = np.nan if a is None else a
            hi[i] = np.nan if b is None else b
            for m in msg:  # an interval ending on E >= 0 is fine; an open or failed one is not
                (notes if "constraint" in m else warnings).append(m)
        method_text = "profile likelihood"
    elif ci == "wald":
        if sol.cov is not None:
            lo, hi = uncertainty.wald_intervals(problem, sol.theta, sol.cov, ci_level)
        method_text = "covariance (Wald, ln scale for positive parameters)"

    if ci == "none":
        method_text = "none"
    errorbars = stderr is not None and bool(np.all(np.isfinite(stderr)))
    if errorbars:
        # signed parameters: |value| < stderr; positive ones (amplitudes, breaks): 1-sigma > one decade
        loose = [n for n, v, e, lg in zip(names, values, stderr, law.log_mask())
                 if (e / abs(v) > np.log(10) if lg else e > abs(v))]
        if loose:
            warnings.append(f"{', '.join(loose)}: poorly determined by these data (standard error above |value|, "
                            "or above a decade for amplitudes and breaks): too few sizes, or a term the data "
                            "cannot see")
    if not errorbars and errorbars_note is None:
        errorbars_note = ("a Huber fit gets its uncertainty from the bootstrap only (bootstrap=K, --bootstrap K)"
                          if problem.loss == "huber" else
                          "the standard errors are not finite: parameters are not determined by these data")
    if stderr is not None and lo is not None and hi is not None:
        for i, name in enumerate(names):  # an interval far narrower than its standard error: say so, show none
            width = hi[i] - lo[i]
            if np.isfinite(stderr[i]) and stderr[i] > 0 and np.isfinite(width) and width < COLLAPSED * stderr[i]:
                lo[i] = hi[i] = np.nan
                warnings.append(f"{name} is not identified by these data: standard error {stderr[i]:.3g} but the "
                                f"{ci} interval collapsed to a point; no interval is reported")
    cov_df = corr_df = None
    if cov_rep is not None and np.all(np.isfinite(cov_rep)):
        d = np.sqrt(np.clip(np.diag(cov_rep), 1e-300, None))
        corr_df = pd.DataFrame(cov_rep / np.outer(d, d), index=names, columns=names)
        cov_df = pd.DataFrame(cov_rep * np.outer(unit, unit), index=names, columns=names)
    values = values * unit
    stderr = None if stderr is None else stderr * unit
    lo = None if lo is None else lo * unit
    hi = None if hi is None else hi * unit
    if samples is not None:
        samples = samples * unit
    params = {}
    for i, rep_par in enumerate(law.reported):
        params[rep_par.name] = ParamEstimate(
            rep_par.name, float(values[i]),
            None if stderr is None or not np.isfinite(stderr[i]) else float(stderr[i]),
            None if lo is None or not np.isfinite(lo[i]) else float(lo[i]),
            None if hi is None or not np.isfinite(hi[i]) else float(hi[i]),
            rep_par.meaning,
        )

    aic = n * np.log(max(sol.chi2, 1e-250) / n) + 2 * k
    aicc = aic + 2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else None
    if aicc is None:
        notes.append(f"AICc needs at least {k + 2} points for {k} parameters")
    if problem.loss == "huber":
        notes.append("AIC of a Huber fit is computed from its squared residuals (a rough guide)")

    ys = original.y_scale  # the table is in the user's units of y
    data = {name: problem.X[name] for name in law.inputs}
    data["y"] = problem.y * ys
    if problem.sigma is not None:
        data["sigma"] = problem.sigma * ys
    data.update(data_extra or {})
    data["fitted"] = law.model(sol.theta, problem.U) * ys
    data["residual"] = problem.residuals(sol.theta) * (ys if problem.sigma is None and not problem.log else 1.0)
    if ys != 1.0:
        notes.append(f"losses were fitted as y / {ys:.3g} (their scale); chi2 and AIC are in those units")
    return FitResult(
        law=law.name, formula=law.formula, params=params, aic=float(aic),
        aicc=None if aicc is None else float(aicc), chi2=sol.chi2, n_points=n, n_params=k,
        errorbars=errorbars, ci_method=method_text if ci != "none" else "none", ci_level=ci_level,
        loss=problem.loss, log=problem.log, x_ref={i: float(np.exp(v)) for i, v in problem.ln_ref.items() if i != Y_KEY},
        data=pd.DataFrame(data), covariance=cov_df, correlations=corr_df, samples=samples,
        errorbars_note=None if errorbars else errorbars_note, warnings=warnings, notes=notes,
        n_starts=sol.n_starts, n_agree=sol.n_agree, lmfit_result=sol.result,
        at_bounds=tuple(r.name for r in law.reported if r.pivot in sol.at_bounds),
        log_params=tuple(r.name for r in law.reported if r.log),
        _problem=original, _theta=sol.theta, _cov=sol.cov, _theta_samples=theta_samples,
    )


def fit_law(x, y, law: str = "power", sigma=None, *, loss: str = "lsq", log: bool = False,
            huber_delta: float = 1e-3, absolute_sigma: bool | None = None, replicates: bool = False,
            n_starts: int = 4, start: dict[str, float] | None = None, bootstrap: int = 0,
            ci: str = "auto", ci_level: float = 0.95, seed: int = 0) -> FitResult:
    """Fit scaling law `law` to losses `y` at sizes `x`.

    x, y: sizes (> 0) and losses (> 0); for the joint law x is a tuple (N, D).
    sigma: per-point standard deviation of y (weights 1/sigma); treated as an absolute
        spread (covariance not rescaled) unless absolute_sigma=False.
    replicates: rows sharing the same x are several runs (seeds): they are averaged, their
        sample std becomes sigma, and the bootstrap resamples seeds within each size.
    loss / log / huber_delta: least squares or Huber, on y or on ln y.
    n_starts: local fits from the best distinct points of a grid of starts (the lowest
        objective wins, then lmfit polishes it); start: a guess in reported parameters
        {name: value}, always one of the starts.
    bootstrap / ci / ci_level / seed: uncertainty (see module docstring).
    """
    lw = get_law(law)
    X = _inputs(lw, x)
    y = as_array(y, "y")
    draw = None
    extra = None
    if replicates:
        if sigma is not None:
            raise FitError("give either sigma or replicates=True (which derives sigma from the runs), not both")
        frame = pd.DataFrame({**X, "y": y})
        check_columns({**X, "y": y}, 0, lw.name)
        agg = aggregate_replicates(frame, list(lw.inputs), "y")
        X = {name: agg[name].to_numpy(float) for name in lw.inputs}
        y, sigma = agg["mean"].to_numpy(float), agg["std"].to_numpy(float)
        keys = frame[list(lw.inputs)].to_numpy()
        groups = [frame["y"].to_numpy()[np.all(keys == row, axis=1)] for row in agg[list(lw.inputs)].to_numpy()]
        extra = {"n_runs": agg["n"].to_numpy()}
    problem = make_problem(lw, X, y, sigma, log=log, loss=loss, huber_delta=huber_delta,
                           absolute_sigma=absolute_sigma)
    if replicates:
        draw = boot.draw_replicates(problem, [g / problem.y_scale for g in groups])
    start_theta = None
    if start is not None:
        missing = set(lw.names) - set(start)
        if missing:
            raise FitError(f"start must give every parameter of {law!r}; missing {sorted(missing)}")
        start_theta = lw.to_internal(start, problem.ln_ref)
    sol = solve(problem, n_starts=n_starts, start=start_theta)
    result = finish(problem, sol, ci=ci, bootstrap=bootstrap, ci_level=ci_level, seed=seed, draw=draw,
                    data_extra=extra)
    if replicates:
        result.notes.append("points are means over runs at the same size; sigma = their sample std")
    return result


def fit_joint(N, D, y, sigma=None, **kwargs) -> FitResult:
    """Fit the joint law L(N, D) = E + A N^-alpha + B D^-beta (keywords as in `fit_law`)."""
    return fit_law((N, D), y, law="joint", sigma=sigma, **kwargs)
