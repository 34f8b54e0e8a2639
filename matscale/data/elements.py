"""Element coverage of a dataset, and a committed summary file for datasets not present.

    element_counts(source, splits=None) -> DataFrame   split, element, Z, structures, atoms
    table_position(Z) -> (group, row)                   where an element sits in the periodic table
    write_summary(root, path) / read_summary(path)      per-subset statistics + element counts as JSON

`structures` counts the structures an element occurs in, `atoms` its atoms. The summary file
lets the book show a dataset that a fresh clone does not have (the teacher dataset takes
~15 CPU-minutes to make): it holds the generator's synth.json, the per split × subset
statistics of `matscale.data.stats` and the element counts, and how it was made.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SUMMARY_FORMAT = "matscale-dataset-summary-v1"


def table_position(z: int) -> tuple[int, int]:
    """(group 1-18, row 1-7 for periods, 9 and 10 for the lanthanide and actinide rows)."""
    z = int(z)
    if not 1 <= z <= 118:
        raise ValueError(f"atomic number {z} is outside 1-118")
    if 57 <= z <= 71:
        return z - 57 + 3, 9
    if 89 <= z <= 103:
        return z - 89 + 3, 10
    starts = (1, 3, 11, 19, 37, 55, 87)  # first atomic number of each period
    period = sum(z >= s for s in starts)
    k = z - starts[period - 1]  # 0-based position in the period
    if period == 1:
        return (1 if z == 1 else 18), 1
    if period in (2, 3):
        return (k + 1 if k < 2 else k + 11), period
    if period in (4, 5):
        return k + 1, period
    # periods 6 and 7: after the two s-block elements come 14 f-block ones drawn below
    if k < 2:
        return k + 1, period
    return k - 14 + 1, period


def element_counts(source, splits=None):
    """pandas.DataFrame: split, element, Z, structures, atoms (one row per element present).

    source: dataset root, a StructureDataset, or a {split: StructureDataset} dict (as in stats).
    """
    import pandas as pd
    from ase.data import chemical_symbols

    from matscale.data.stats import _datasets

    rows = []
    for split, ds in _datasets(source, splits, None).items():
        atoms = np.zeros(119, dtype=np.int64)
        structures = np.zeros(119, dtype=np.int64)
        for i in range(len(ds)):
            z = np.asarray(ds.record(i).numbers, dtype=np.int64)
            atoms += np.bincount(z, minlength=119)[:119]
            structures[np.unique(z)] += 1
        for z in np.flatnonzero(atoms):
            rows.append({"split": split, "element": chemical_symbols[z], "Z": int(z),
                         "structures": int(structures[z]), "atoms": int(atoms[z])})
    return pd.DataFrame(rows, columns=["split", "element", "Z", "structures", "atoms"])


def write_summary(root: str | os.PathLike, path: str | os.PathLike, made_by: str = "") -> dict:
    """Write the summary JSON of the dataset at `root` to `path` (atomically); returns it."""
    from matscale.data.stats import summary_statistics, to_json

    root = Path(root)
    try:
        synth = json.loads((root / "synth.json").read_text())
    except (OSError, ValueError):
        synth = None
    stats = json.loads(to_json(summary_statistics(root)))
    elements = element_counts(root)
    out = {"format": SUMMARY_FORMAT, "dataset": root.name, "made_by": made_by, "synth": synth,
           "size_bytes": int(sum(f.stat().st_size for f in root.rglob("*") if f.is_file())),
           "units": stats["units"], "statistics": stats["statistics"],
           "elements": elements.to_dict(orient="records")}
    from matscale.runs import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    return out


def read_summary(path: str | os.PathLike):
    """(info dict, statistics DataFrame, element counts DataFrame) of a summary file."""
    import pandas as pd

    from matscale.data.stats import STAT_COLUMNS
    from matscale.errors import DataError

    path = Path(path)
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read dataset summary {path}: {exc}") from None
    if info.get("format") != SUMMARY_FORMAT:
        raise DataError(f"{path} is not a dataset summary (format {info.get('format')!r}, expected {SUMMARY_FORMAT})")
    stats = pd.DataFrame(info.pop("statistics"), columns=["split", "subset", "quantity", "unit"] + STAT_COLUMNS)
    stats[STAT_COLUMNS] = stats[STAT_COLUMNS].astype(float)
    elements = pd.DataFrame(info.pop("elements"), columns=["split", "element", "Z", "structures", "atoms"])
    return info, stats, elements


def committed_summary(name: str = "teacher_stats.json") -> Path:
    """A dataset summary committed with the book: `<repo>/book/data/<name>`."""
    return Path(__file__).resolve().parents[2] / "book" / "data" / name


def subset_sizes(stats):
    """Structures per subset and split, with the training split's atoms per structure
    (mean, min, median, max), from a `summary_statistics` table."""
    natoms = stats[stats["quantity"] == "natoms"]
    sizes = natoms.pivot_table(index="subset", columns="split", values="count", sort=False).astype(int)
    atoms = natoms[natoms["split"] == "train"].set_index("subset")[["mean", "min", "p50", "max"]]
    atoms.columns = [f"atoms/structure {c} (train)" for c in atoms.columns]
    return sizes.join(atoms).rename(columns={"train": "train structures", "val": "val structures"})


def quantity_table(stats, quantity: str, columns=("count", "mean", "std", "p05", "p50", "p95", "max")):
    """One quantity's statistics: subsets as rows, (split, statistic) as columns."""
    part = stats[stats["quantity"] == quantity]
    wide = part.pivot_table(index="subset", columns="split", values=list(columns), sort=False)
    splits = [s for s in ("train", "val") if s in set(part["split"])]
    return wide.swaplevel(axis=1)[[(split, c) for split in splits for c in columns]]
