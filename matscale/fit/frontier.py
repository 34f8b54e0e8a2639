"""The compute frontier: the Pareto front of (cumulative FLOPs, loss) over many runs' curves,
fitted with L(C) = L_inf + F C^-gamma.

Points on a front are minima over runs, not independent measurements, so covariance and
profile intervals are optimistic; `fit_frontier(..., bootstrap=K)` resamples whole runs
(with replacement), recomputes the front and refits, which is the honest choice.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from matscale.errors import FitError, MatscaleError
from matscale.fit.api import finish, make_problem
from matscale.fit.engine import solve
from matscale.fit.laws import get_law


def _check(curves: pd.DataFrame, cols) -> None:
    missing = [c for c in cols if c not in curves.columns]
    if missing:
        raise FitError(f"no column(s) {missing}; the table has: {', '.join(map(str, curves.columns))}")


def compute_frontier(curves: pd.DataFrame, flops_col: str = "flops", loss_col: str = "loss",
                     run_col: str = "run") -> pd.DataFrame:
    """Rows of `curves` on the Pareto front: no row with fewer or equal FLOPs has lower loss.

    Rows with a non-finite loss (diverged evaluations) are ignored. Returns the front sorted
    by FLOPs with columns flops_col, loss_col, run_col.
    """
    _check(curves, [flops_col, loss_col, run_col])
    df = curves[[flops_col, loss_col, run_col]].copy()
    df[flops_col] = pd.to_numeric(df[flops_col], errors="coerce")
    df[loss_col] = pd.to_numeric(df[loss_col], errors="coerce")
    df = df[np.isfinite(df[loss_col])]
    bad = ~(np.isfinite(df[flops_col]) & (df[flops_col] > 0))
    if bad.any():
        raise FitError(f"column {flops_col!r} must be finite and > 0; bad rows: {df.index[bad][:5].tolist()}")
    if df.empty:
        raise FitError("no finite losses to build a compute frontier from")
    df = df.sort_values([flops_col, loss_col], kind="stable")
    best_before = np.minimum.accumulate(df[loss_col].to_numpy())
    keep = np.r_[True, df[loss_col].to_numpy()[1:] < best_before[:-1]]
    return df[keep].reset_index(drop=True)


def fit_frontier(curves: pd.DataFrame, flops_col: str = "flops", loss_col: str = "loss", run_col: str = "run",
                 *, law: str = "frontier", log: bool = False, loss: str = "lsq", huber_delta: float = 1e-3, n_starts: int = 4,
                 bootstrap: int = 0, ci: str = "auto", ci_level: float = 0.95, seed: int = 0):
    """Fit L(C) = L_inf + F C^-gamma (law "frontier"; "frontier_power": F C^-gamma, no floor)
    to the compute frontier of `curves`.

    The FitResult's `data` holds the front (with the run of each point); with bootstrap=K
    the intervals come from K resamples of whole runs.
    """
    if law not in ("frontier", "frontier_power"):
        raise FitError(f"a compute frontier is fitted with law 'frontier' or 'frontier_power', not {law!r}")
    law = get_law(law)
    front = compute_frontier(curves, flops_col, loss_col, run_col)
    x, y = front[flops_col].to_numpy(float), front[loss_col].to_numpy(float)
    problem = make_problem(law, {"x": x}, y, log=log, loss=loss, huber_delta=huber_delta)
    sol = solve(problem, n_starts=n_starts)
    runs = curves[run_col].unique()
    if (bootstrap > 0 or ci == "bootstrap") and len(runs) < 2:
        raise FitError(f"the frontier bootstrap resamples whole runs, but the table holds {len(runs)} run "
                       f"(column {run_col!r}): every resample would be the same front; add runs or drop "
                       "--bootstrap (profile intervals are then used)")
    by_run = {r: g for r, g in curves.groupby(run_col, sort=False)}

    def draw(rng):
        pick = rng.choice(len(runs), len(runs), replace=True)
        sample = pd.concat([by_run[runs[i]] for i in pick], ignore_index=True)
        f = compute_frontier(sample, flops_col, loss_col, run_col)
        try:
            return make_problem(law, {"x": f[flops_col].to_numpy(float)}, f[loss_col].to_numpy(float),
                                log=log, loss=loss, huber_delta=huber_delta, ln_ref=problem.ln_ref)
        except MatscaleError:
            return None  # too few front points in this resample

    result = finish(problem, sol, ci=ci, bootstrap=bootstrap, ci_level=ci_level, seed=seed, draw=draw,
                    data_extra={run_col: front[run_col].to_numpy()})
    result.notes.append("frontier points are minima over runs, not independent: prefer bootstrap intervals "
                        "(resampling runs)" if result.samples is None else "bootstrap resampled whole runs")
    return result
