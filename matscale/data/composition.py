"""What a selection of structures is made of: parents, subsets and elements.

    composition(selection, split=None) -> Composition

`selection` is a `StructureDataset` (its `parent_ids`, `subsets` and records are used, so
nothing but the atomic numbers is decoded) or any sequence of `ase.Atoms` whose `info` has
the parent (`parent_id` or `parent`) and the `subset`. `split` is the dataset the selection
was drawn from (same kinds), so the parents it covers can be counted against all of them.
The book's dataset page shows this for the study's validation selection: a validation set
drawn from a handful of trajectories measures those trajectories, not the split.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from matscale.errors import DataError


@dataclass
class Composition:
    """Counts of one selection. `subsets`: subset, structures, parents, share of structures;
    `elements`: element, Z, structures containing it, share of structures; `parents`: parent id,
    the subsets it occurs in, structures (largest first; one parent can seed trajectories in
    several subsets); `parents_total`: distinct parents of the split (None: unknown)."""

    structures: int
    parents: pd.DataFrame
    subsets: pd.DataFrame
    elements: pd.DataFrame
    parents_total: int | None = None

    @property
    def parents_covered(self) -> int:
        return len(self.parents)

    @property
    def largest_parent_share(self) -> float:
        return float(self.parents["structures"].max() / self.structures) if self.structures else 0.0

    def summary(self) -> str:
        """One sentence: structures, parents covered (of the split's), the largest parent's share."""
        of = f" of the split's {self.parents_total}" if self.parents_total is not None else ""
        if not self.structures:
            return "The selection is empty."
        top = self.parents.iloc[0]
        return (f"{self.structures} structures from {self.parents_covered}{of} parents in {len(self.subsets)} "
                f"subsets; the largest parent ({top['parent']}) holds "
                f"{100 * self.largest_parent_share:.0f}% of them, and the rarest element "
                f"({self.elements.iloc[-1]['element']}) occurs in {100 * self.elements.iloc[-1]['share']:.0f}%.")


def _columns(selection) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(parent per row, subset per row, atomic numbers per row) of a dataset or a list of Atoms."""
    if hasattr(selection, "parent_ids") and hasattr(selection, "subsets") and hasattr(selection, "record"):
        numbers = [np.asarray(selection.record(i).numbers) for i in range(len(selection))]
        return np.asarray(selection.parent_ids, dtype=object), np.asarray(selection.subsets, dtype=object), numbers
    parents, subsets, numbers = [], [], []
    for i, atoms in enumerate(selection):
        info = getattr(atoms, "info", None)
        if info is None or not hasattr(atoms, "get_atomic_numbers"):
            raise DataError(f"item {i} of the selection is a {type(atoms).__name__}, not an ase.Atoms; pass a "
                            "StructureDataset (matscale.data.open_split) or a list of ase.Atoms")
        parent = info.get("parent_id", info.get("parent"))
        if parent is None:
            raise DataError(f"structure {i} has no parent in atoms.info (expected 'parent_id' or 'parent'); "
                            "the composition counts structures per parent")
        parents.append(str(parent))
        subsets.append(str(info.get("subset", "—")))
        numbers.append(np.asarray(atoms.get_atomic_numbers()))
    return np.asarray(parents, dtype=object), np.asarray(subsets, dtype=object), numbers


def _parents_of(split) -> int:
    if hasattr(split, "parent_ids"):
        return int(len(set(np.asarray(split.parent_ids, dtype=object).tolist())))
    return int(len(set(_columns(split)[0].tolist())))


def composition(selection, split=None) -> Composition:
    """Parents, subsets and element coverage of `selection` (see the module docstring)."""
    from ase.data import chemical_symbols

    parents, subsets, numbers = _columns(selection)
    n = len(parents)
    rows = pd.DataFrame({"parent": parents, "subset": subsets})
    g = rows.groupby("parent", sort=False)
    per_parent = (pd.DataFrame({"subsets": g["subset"].agg(lambda s: ", ".join(dict.fromkeys(s))),
                                "structures": g.size()}).reset_index()
                  .sort_values("structures", ascending=False, kind="stable").reset_index(drop=True))
    per_subset = rows.groupby("subset", sort=False).agg(structures=("parent", "size"), parents=("parent", "nunique"))
    per_subset["share"] = per_subset["structures"] / max(n, 1)
    containing = np.zeros(119, dtype=np.int64)
    for z in numbers:
        containing[np.unique(z.astype(np.int64))] += 1
    zs = np.flatnonzero(containing)
    elements = pd.DataFrame({"element": [chemical_symbols[z] for z in zs], "Z": zs.astype(int),
                             "structures": containing[zs]})
    elements["share"] = elements["structures"] / max(n, 1)
    elements = elements.sort_values(["structures", "Z"], ascending=[False, True]).reset_index(drop=True)
    return Composition(structures=n, parents=per_parent, subsets=per_subset.reset_index(), elements=elements,
                       parents_total=_parents_of(split) if split is not None else None)
