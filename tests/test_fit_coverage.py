"""Calibration of matscale.fit's intervals on synthetic data drawn from known laws with noise.

200 seeded trials per law with the covariance (Wald) intervals, which are cheap; the
profile-likelihood intervals — the default in the CLI — get a smaller run of 40 trials.
Each law uses a different noise model: known sigma (absolute), unknown sigma (scale
estimated, Student-t / F quantiles), linear and log space.
"""
from __future__ import annotations

import numpy as np
import pytest

from matscale.fit import fit_law

TRIALS = 200


def _power(rng):
    x = np.geomspace(1e3, 1e7, 12)
    y = 50 * x**-0.3 * np.exp(rng.normal(0, 0.02, x.size))  # log-normal, sigma unknown
    return x, y, dict(law="power", log=True), {"A": 50, "alpha": 0.3}


def _power_floor(rng):
    x = np.geomspace(1e3, 1e8, 15)
    y = 1.0 + 30 * x**-0.4 + rng.normal(0, 0.01, x.size)  # additive, sigma known
    return x, y, dict(law="power_floor", sigma=np.full(x.size, 0.01)), {"E": 1.0, "A": 30, "alpha": 0.4}


def _broken(rng):
    x = np.geomspace(1e3, 1e6, 12)
    truth = (3e4 / x) ** 0.45 * (1 + 3e4 / x) ** (0.15 - 0.45)
    sigma = 0.01 * truth  # per-point sigma, as from seeds
    y = truth + rng.normal(0, 1, x.size) * sigma
    return x, y, dict(law="broken", sigma=sigma), {"alpha1": 0.15, "alpha2": 0.45, "x_c": 3e4}


def _broken_amp(rng):
    x = np.geomspace(1e2, 1e6, 14)
    truth = 2.0 * (1e4 / x) ** 0.5 * (1 + 1e4 / x) ** (0.1 - 0.5)
    y = truth + rng.normal(0, 0.01, x.size)  # additive, sigma unknown
    return x, y, dict(law="broken_amp"), {"A": 2.0, "alpha1": 0.1, "alpha2": 0.5, "x_c": 1e4}


def _joint(rng):
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 5), np.geomspace(1e9, 1e12, 5)))
    y = (1.7 + 400 * N**-0.34 + 2000 * D**-0.28) * np.exp(rng.normal(0, 0.01, N.size))
    return (N, D), y, dict(law="joint", log=True), {"E": 1.7, "A": 400, "alpha": 0.34, "B": 2000, "beta": 0.28}


def _coverage(make, trials, ci, seed):
    rng = np.random.default_rng(seed)
    hits, no_errorbars = {}, 0
    for _ in range(trials):
        x, y, kw, true = make(rng)
        fit = fit_law(x, y, ci=ci, n_starts=2, **kw)
        no_errorbars += not fit.errorbars
        for name, value in true.items():
            p = fit[name]
            inside = p.ci_low is not None and p.ci_high is not None and p.ci_low <= value <= p.ci_high
            hits[name] = hits.get(name, 0) + inside
    return {k: v / trials for k, v in hits.items()}, no_errorbars


@pytest.mark.parametrize("make", [_power, _power_floor, _broken, _broken_amp, _joint], ids=lambda f: f.__name__[1:])
def test_95_percent_covariance_intervals_cover_the_truth(make):
    coverage, no_errorbars = _coverage(make, TRIALS, "wald", seed=11)
    assert no_errorbars == 0
    for name, frac in coverage.items():
        assert frac >= 0.90, (name, coverage)
        assert frac <= 0.995, (name, coverage)  # not vacuously wide either


@pytest.mark.parametrize("make", [_power_floor, _broken], ids=lambda f: f.__name__[1:])
def test_95_percent_profile_intervals_cover_the_truth(make):
    coverage, _ = _coverage(make, 40, "profile", seed=12)
    for name, frac in coverage.items():
        assert frac >= 0.85, (name, coverage)
