"""Shared parts of the chart builders: column checks, labels, log scales."""
from __future__ import annotations

import re
from typing import Sequence

import altair as alt
import numpy as np
import pandas as pd

from matscale.errors import DataError

SPLITS = ("train", "val")
RUN_COLUMNS = ("run_id", "run")  # recognised names of a run-identifier column
_SPLIT_COL = re.compile(r"^(train|val)_(.+)$")
_UNITS = {"eV_atom": "eV/atom", "eV_A3": "eV/Å³", "eV_A": "eV/Å", "GPa": "GPa"}
# axis titles with units for the columns the book plots (others: the name with spaces)
AXIS_TITLES = {"epoch": "epoch", "step": "optimiser steps", "samples_seen": "training structures seen",
               "atoms_seen": "training atoms seen", "flops": "training compute C (FLOPs)",
               "wall_s": "wall time (s)", "params": "non-embedding parameters N",
               "params_total": "parameters (total)", "n_train": "training structures D",
               "val_loss": "validation loss (weighted, loss units)",
               "train_loss": "training loss (weighted, loss units)",
               "best_val_loss": "best validation loss (weighted, loss units)",
               # the study pages' chart columns (matscale.study.pages.LABELS)
               "training_structures": "training structures D", "non_embedding_parameters": "non-embedding parameters N",
               "forces_rel": "relative force error under rotation"}
LOSS_UNITS = "loss (weighted, loss units)"  # the OMat24 loss: a weighted sum of MAEs in eV/atom, eV/Å, eV/Å³
LEGEND_COLUMNS = 3  # entries per row of a legend below a chart (long run labels stay within the page)


def axis_title(column: str) -> str:
    """'flops' -> 'training compute C (FLOPs)'; unknown names: underscores become spaces."""
    return AXIS_TITLES.get(column, column.replace("_", " "))


# -- helpers ----------------------------------------------------------------------------------
def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} lacks column(s) {missing}; it has {list(df.columns)}"
        )


def _label(name: str) -> str:
    """'loss_stress_iso' -> 'stress iso'; 'force_l2mae_eV_A' -> 'force l2mae (eV/Å)'."""
    if name == "loss":
        return "total"
    name = name[len("loss_"):] if name.startswith("loss_") else name
    for suffix, unit in _UNITS.items():
        if name.endswith("_" + suffix):
            return f"{name[: -len(suffix) - 1].replace('_', ' ')} ({unit})"
    return name.replace("_", " ")


def _run_column(df: pd.DataFrame, run: str | None) -> str | None:
    if run is not None:
        _require(df, [run], "the table")
        return run
    return next((c for c in RUN_COLUMNS if c in df.columns), None)


def _positive(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Rows whose `columns` are finite and > 0 (what a log scale can show)."""
    keep = np.ones(len(df), dtype=bool)
    for c in columns:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        keep &= np.isfinite(v) & (v > 0)
    return df[keep]


def _scale(log: bool) -> alt.Scale:
    return alt.Scale(type="log") if log else alt.Scale(zero=False)


# -- training curves --------------------------------------------------------------------------
