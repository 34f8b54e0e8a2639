"""Bootstrap: refit on resampled data, warm-started from the full-data optimum.

Three ways to resample, chosen by the caller:
- `points`: rows drawn with replacement (needs k+1 distinct sizes per draw);
- `replicates`: for averaged runs, the seeds at each size are drawn with replacement and
  re-averaged; sigma stays the spread measured on all seeds (a resample of 3 seeds can have
  zero spread);
- any callable `draw(rng) -> Problem | None` (e.g. resampling whole runs for a frontier).
Percentile intervals and the sample standard deviation summarise the draws.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from matscale.fit.engine import Problem, Solution, refit


def draw_points(problem: Problem) -> Callable[[np.random.Generator], Problem | None]:
    n, k = problem.n, problem.k
    rows = np.column_stack([problem.U[i] for i in problem.law.inputs])

    def draw(rng):
        idx = rng.integers(0, n, n)
        if len(np.unique(rows[idx], axis=0)) < k + 1:
            return None  # degenerate draw: too few distinct sizes for this law
        return problem.subset(idx)

    return draw


def draw_replicates(problem: Problem, groups: list[np.ndarray]) -> Callable[[np.random.Generator], Problem]:
    """`groups[i]` holds the raw y values (seeds) averaged into point i."""

    def draw(rng):
        means = np.array([g[rng.integers(0, len(g), len(g))].mean() for g in groups])
        return problem.subset(np.arange(problem.n), y=means)

    return draw


def run_bootstrap(sol: Solution, draw: Callable, n_boot: int, rng: np.random.Generator,
                  max_tries: int | None = None) -> tuple[np.ndarray, int]:
    """Internal-parameter draws (m, k) from `n_boot` resamples, and the number that failed."""
    thetas, failed, tries = [], 0, 0
    max_tries = max_tries or 3 * n_boot
    while len(thetas) + failed < n_boot and tries < max_tries:
        tries += 1
        prob = draw(rng)
        if prob is None:
            continue
        theta = refit(prob, sol.theta)
        if theta is None:
            failed += 1
        else:
            thetas.append(theta)
    return np.array(thetas).reshape(-1, len(sol.theta)), failed


def summarize(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stderr, low, high) of reported-parameter draws (m, p): std and percentile interval."""
    q = [(1 - level) / 2, (1 + level) / 2]
    with np.errstate(over="ignore", invalid="ignore"):  # unbounded draws: an inf stderr, which identify() reports
        lo, hi = np.quantile(samples, q, axis=0)
        return samples.std(axis=0, ddof=1), lo, hi
