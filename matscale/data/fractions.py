"""Seeded, nested, subset-stratified, parent-grouped fractions of a split.

Within each subset, parents are ranked by a seeded hash of their id; a fraction takes the
shortest prefix of that ranking whose row count is closest to frac × (the subset's rows),
at least one parent. The ranking does not depend on frac, and the chosen prefix length
never shrinks as frac grows, so for one seed frac 0.01 ⊂ 0.1 ⊂ 1; all frames of a parent
(a trajectory, a relaxation, the rattles of one structure) are taken or left together.
"""
from __future__ import annotations

import hashlib

import numpy as np

from matscale.errors import DataError


def check_frac(frac: float, name: str = "frac") -> float:
    try:
        value = float(frac)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a number in (0, 1], got {frac!r}") from None
    if not (0.0 < value <= 1.0):
        raise DataError(f"{name} must be in (0, 1] (the share of structures to use), got {frac!r}")
    return value


def parent_rank(parent_ids: np.ndarray, seed: int) -> np.ndarray:
    """Order (argsort) of `parent_ids` by a seeded 64-bit hash (ties broken by id)."""
    keys = [hashlib.blake2b(f"{int(seed)}\0{p}".encode(), digest_size=8).digest() for p in parent_ids]
    return np.array(sorted(range(len(parent_ids)), key=lambda i: (keys[i], str(parent_ids[i]))), dtype=np.int64)


def select_rows(subset_of_row: np.ndarray, parent_of_row: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """Sorted row indices of the fraction `frac` (see module doc). frac = 1 keeps every row."""
    frac = check_frac(frac)
    n = len(subset_of_row)
    if frac == 1.0:
        return np.arange(n, dtype=np.int64)
    subset_of_row = np.asarray(subset_of_row)
    parent_of_row = np.asarray(parent_of_row).astype(str)
    keep = np.zeros(n, dtype=bool)
    for subset in np.unique(subset_of_row):
        rows = np.flatnonzero(subset_of_row == subset)
        names, inverse, counts = np.unique(parent_of_row[rows], return_inverse=True, return_counts=True)
        order = parent_rank(names, seed)
        cum = np.cumsum(counts[order])
        k = int(np.argmin(np.abs(cum - frac * len(rows)))) + 1  # smallest best prefix, ≥ 1 parent
        chosen = np.zeros(len(names), dtype=bool)
        chosen[order[:k]] = True
        keep[rows[chosen[inverse]]] = True
    return np.flatnonzero(keep).astype(np.int64)
