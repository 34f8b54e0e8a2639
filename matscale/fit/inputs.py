"""Checking fit inputs and averaging replicate runs (several seeds at the same size).

Every problem a user can make with their table (NaN, zeros, mismatched lengths, too few
points, one seed only) becomes one FitError saying what is wrong and what to do.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from matscale.errors import FitError


def as_array(values, name: str) -> np.ndarray:
    """A 1-D float array, or a FitError naming the column."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise FitError(f"column {name!r} must be numeric; found values such as {list(values)[:3]!r}") from None
    if arr.ndim != 1:
        raise FitError(f"column {name!r} must be one-dimensional; got shape {arr.shape}")
    return arr


def check_columns(columns: dict[str, np.ndarray], n_params: int, law: str) -> int:
    """Validate equal lengths, finiteness, positivity and enough points; return n."""
    lengths = {name: len(v) for name, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise FitError(f"columns have different lengths {lengths}; give one value per row in each")
    n = next(iter(lengths.values()))
    for name, v in columns.items():
        bad = ~np.isfinite(v)
        if bad.any():
            rows = np.flatnonzero(bad)[:5].tolist()
            raise FitError(f"column {name!r} has NaN or infinite values at rows {rows}; drop or fix those rows")
        if (v <= 0).any():
            rows = np.flatnonzero(v <= 0)[:5].tolist()
            raise FitError(
                f"column {name!r} has non-positive values at rows {rows} (e.g. {v[v <= 0][0]:g}); "
                "sizes, losses and sigmas must be > 0 for a power-law fit"
            )
    if n < n_params + 1:
        raise FitError(
            f"law {law!r} has {n_params} parameters but there are only {n} points; "
            f"it needs at least {n_params + 1} (distinct sizes) to fit with error bars"
        )
    return n


def aggregate_replicates(df: pd.DataFrame, x: str | list[str], y: str, ddof: int = 1) -> pd.DataFrame:
    """Mean and standard deviation of `y` over rows sharing the same `x` (e.g. seeds).

    Returns one row per distinct x with columns x..., ``mean``, ``std`` and ``n``, sorted by
    x. The std (sample std, `ddof`=1 by default) is meant as sigma for a weighted fit (the
    optimetal procedure: means weighted by the spread over seeds).
    """
    keys = [x] if isinstance(x, str) else list(x)
    for col in keys + [y]:
        if col not in df.columns:
            raise FitError(f"no column {col!r}; the table has: {', '.join(map(str, df.columns))}")
    grouped = df.groupby(keys, sort=True)[y]
    out = grouped.agg(mean="mean", std=lambda s: s.std(ddof=ddof), n="count").reset_index()
    lonely = out[out["n"] < 2]
    if len(lonely):
        raise FitError(
            f"{len(lonely)} sizes have a single run (e.g. {keys[0]}={lonely[keys[0]].iloc[0]}); "
            "replicates need >= 2 runs per size — drop replicates (--replicates) or give sigma (--sigma); "
            "seeds of one data fraction select slightly different counts: group them (--group frac) "
            "or use the nominal size D of `python -m matscale runs export`"
        )
    flat = out[~(out["std"] > 0)]
    if len(flat):
        raise FitError(
            f"the runs at {keys[0]}={flat[keys[0]].iloc[0]!r} all have the same {y}, so their spread is 0 "
            "and cannot serve as sigma; give sigma (--sigma) or drop replicates (--replicates)"
        )
    return out

