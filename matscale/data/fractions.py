"""Seeded, nested, subset-stratified fractions of a split, and per-parent selections.

by parent (`select_rows`, the default): within each subset, parents are ranked by a seeded
hash of their id; a fraction takes the shortest prefix of that ranking whose row count is
closest to frac × (the subset's rows), at least one parent. The ranking does not depend on
frac, and the chosen prefix length never shrinks as frac grows, so for one seed
frac 0.01 ⊂ 0.1 ⊂ 1; all frames of a parent (a trajectory, a relaxation, the rattles of one
structure) are taken or left together. The smallest fraction is one parent per subset.

by structure (`select_structures`): within each subset, rows are ranked by a seeded hash of
their index and a fraction takes the first round(frac × rows) (at least one): nested in the
same way, and able to go below one parent per subset (a data series over two decades needs
sets of ~60 structures). Frames of one parent may then sit in different fractions; the
validation split's parents are disjoint from the training split's either way.

per parent (`select_per_parent`): the first `n` rows (seeded hash order) of EVERY parent, so
a validation set of a few hundred structures covers every validation trajectory instead of
a few whole ones.
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


FRAC_BY = ("parent", "structure")


def _rank(keys, seed: int) -> np.ndarray:
    """Order (argsort) of `keys` (strings) by a seeded 64-bit hash (ties broken by key)."""
    hashed = [hashlib.blake2b(f"{int(seed)}\0{k}".encode(), digest_size=8).digest() for k in keys]
    return np.array(sorted(range(len(keys)), key=lambda i: (hashed[i], str(keys[i]))), dtype=np.int64)


def parent_rank(parent_ids: np.ndarray, seed: int) -> np.ndarray:
    """Order (argsort) of `parent_ids` by a seeded 64-bit hash (ties broken by id)."""
    return _rank([str(p) for p in parent_ids], seed)


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


def select_structures(subset_of_row: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """Sorted row indices of `frac` of each subset's rows, by seeded rank (see module doc)."""
    frac = check_frac(frac)
    subset_of_row = np.asarray(subset_of_row)
    if frac == 1.0:
        return np.arange(len(subset_of_row), dtype=np.int64)
    keep = []
    for subset in np.unique(subset_of_row):
        rows = np.flatnonzero(subset_of_row == subset)
        k = max(1, int(round(frac * len(rows))))
        keep.append(rows[_rank([str(r) for r in rows], seed)[:k]])
    return np.sort(np.concatenate(keep)).astype(np.int64) if keep else np.zeros(0, dtype=np.int64)


def select_per_parent(parent_of_row: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted row indices of the first `n` rows (seeded rank) of every parent (all of a
    parent's rows when it has fewer)."""
    if int(n) < 1:
        raise DataError(f"per_parent must be >= 1 frame per parent, got {n!r}")
    _, inverse, counts = np.unique(np.asarray(parent_of_row).astype(str), return_inverse=True, return_counts=True)
    by_parent = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])  # one pass, not one per parent
    keep = [rows[_rank([str(r) for r in rows], seed)[:int(n)]] for rows in by_parent if len(rows)]
    return np.sort(np.concatenate(keep)).astype(np.int64) if keep else np.zeros(0, dtype=np.int64)
