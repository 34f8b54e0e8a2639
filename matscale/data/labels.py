"""Which labels a structure carries, and how many structures of a split carry each.

Real datasets mix labels: a single-point calculation may lack stress, a relaxation trajectory
may store energies only. matscale represents a missing label by its absence from the
structure's calculator results (`ase.Atoms`) or by NaN in a decoded `Record`; batches carry
`has_energy` / `has_forces` / `has_stress` flags and the loss and metrics skip missing terms.
A label with a non-zero loss weight must be present on at least one structure of every
split (`check_coverage`), otherwise its metric would be undefined.
"""
from __future__ import annotations

import numpy as np

from matscale.errors import DataError

LABELS = ("energy", "forces", "stress")
# loss weight(s) (TrainConfig fields) that need each label
WEIGHTS = {"energy": ("energy_weight",), "forces": ("force_weight",),
           "stress": ("stress_iso_weight", "stress_aniso_weight")}


def present(item) -> tuple[bool, bool, bool]:
    """(has energy, has forces, has stress) of an `ase.Atoms` or a decoded `Record`."""
    if hasattr(item, "has_energy"):
        return item.has_energy, item.has_forces, item.has_stress
    results = getattr(getattr(item, "calc", None), "results", None) or {}
    return tuple(results.get(k) is not None and bool(np.isfinite(np.asarray(results[k], float)).all())
                 for k in LABELS)


def coverage(dataset) -> dict[str, int]:
    """{"structures": n, "energy": k, "forces": k, "stress": k}: structures carrying each label.

    Decodes every row (a `StructureDataset` is read as records, without building Atoms)."""
    get = dataset.record if hasattr(dataset, "record") else dataset.__getitem__
    counts = np.zeros(3, dtype=np.int64)
    for i in range(len(dataset)):
        counts += np.asarray(present(get(i)), dtype=np.int64)
    return {"structures": len(dataset), **{k: int(c) for k, c in zip(LABELS, counts)}}


def check_coverage(split: str, cov: dict[str, int], config) -> None:
    """DataError when a label that a non-zero loss weight needs is missing on every structure."""
    for label, names in WEIGHTS.items():
        used = [n for n in names if getattr(config, n, 0)]
        if used and cov.get(label, 0) == 0 and cov.get("structures", 0) > 0:
            flags = " ".join(f"--{n.replace('_', '-')} 0" for n in used)
            raise DataError(f"no structure in {split} ({cov['structures']} structures) has a {label} label; "
                            f"set its loss weight to 0 ({flags}) or add {label} labels to the {split} data")


def describe(cov: dict[str, int]) -> str:
    """'energy 30/30, forces 30/30, stress 29/30'."""
    n = cov.get("structures", 0)
    return ", ".join(f"{k} {cov.get(k, 0)}/{n}" for k in LABELS)
