"""Checks on a run's data before training: hard errors for unusable labels, warnings for
splits too small to trust.

- Every label a non-zero loss weight needs must be on at least one training and one
  validation structure (`matscale.data.labels.check_coverage`), else DataError.
- Fewer than `SMALL` validation structures (in total, or what `val_frac` selects), or a
  `frac` selecting fewer than `SMALL` training structures, gives a warning: validation losses
  on a handful of structures are noise. Warnings are printed once (stderr, main process) and
  kept in summary.json under `warnings`.
"""
from __future__ import annotations

import sys

from matscale.data.labels import check_coverage, coverage

SMALL = 20  # structures


def split_warnings(config, n_train: int, n_val: int) -> list[str]:
    """Warnings about small splits (see module doc)."""
    out = []
    if n_val < SMALL:
        per_parent = getattr(config, "val_per_parent", 0)
        if per_parent:
            hint = f"raise --val-per-parent (now {per_parent} frame(s) of every validation parent)"
        elif config.val_frac < 1:
            hint = f"raise --val-frac (now {config.val_frac:g}; 1 uses the whole validation split)"
        else:
            hint = "add validation structures (e.g. a larger `data import --val-frac`)"
        out.append(f"validation uses only {n_val} structure(s) (< {SMALL}): its losses are noise-dominated; {hint}")
    if n_train < SMALL:
        hint = f"raise --frac (now {config.frac:g})" if config.frac < 1 else "add training structures"
        out.append(f"training uses only {n_train} structure(s) (< {SMALL}); {hint}")
    return out


def check_labels(config, norm, val_set) -> dict[str, dict[str, int]]:
    """Label coverage {split: counts} of the training (from the fitted normalisation) and
    validation structures; DataError when a weighted label is missing on a whole split."""
    out = {}
    if getattr(norm, "coverage", None):
        out["train"] = dict(norm.coverage)
        check_coverage("train", out["train"], config)
    out["val"] = coverage(val_set)
    check_coverage("val", out["val"], config)
    return out


def report(warnings: list[str], is_main: bool = True) -> None:
    if is_main:
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)

