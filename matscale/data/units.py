"""Units and sign conventions for imported labels (what `matscale data import` converts).

matscale stores ASE's conventions: energy eV, forces eV/Å, stress eV/Å³ as Voigt-6
(xx, yy, zz, yz, xz, xy), POSITIVE IN TENSION (a compressed cell has negative stress, i.e.
positive pressure p = −tr σ/3).

- Stress given in other units is scaled only (its sign convention must already be ASE's):
  1 GPa = `ase.units.GPa` eV/Å³ (≈ 6.2415e-3), 1 kbar = 0.1 GPa (VASP's "kB").
  ASE's own file readers (VASP OUTCAR/vasprun.xml, .traj, .db) already return eV/Å³ in this
  convention, so leave `--stress-units` at its default for them.
- Virial W (eV, the extended-XYZ convention used by GAP/MACE/nequip: W = −σ·V) becomes
  σ = −W / V with V the cell volume (Å³); it needs a 3-D periodic cell.
"""
from __future__ import annotations

import numpy as np
from ase import units

from matscale.errors import DataError

# unit name -> eV/Å³ per unit
STRESS_UNITS: dict[str, float] = {"eV/A3": 1.0, "GPa": units.GPa, "kbar": 0.1 * units.GPa}
_ALIASES = {"ev/a3": "eV/A3", "ev/a^3": "eV/A3", "ev/å3": "eV/A3", "ev/å^3": "eV/A3", "ev/ang3": "eV/A3",
            "gpa": "GPa", "kbar": "kbar", "kb": "kbar"}
_VOIGT = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


def stress_unit(name: str) -> str:
    """The canonical unit name of `name` (case-insensitive; kB = kbar); DataError otherwise."""
    key = str(name).strip().lower().replace(" ", "")
    if key not in _ALIASES:
        raise DataError(f"unknown stress unit {name!r}; choose one of {', '.join(STRESS_UNITS)} (kB = kbar)")
    return _ALIASES[key]


def full_tensor(values, what: str = "stress") -> np.ndarray:
    """A 3×3 float64 tensor from Voigt-6 (xx, yy, zz, yz, xz, xy), 9 values (row-major) or 3×3."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 6:
        v = a.reshape(6)
        return np.array([[v[0], v[5], v[4]], [v[5], v[1], v[3]], [v[4], v[3], v[2]]])
    if a.size == 9:
        return a.reshape(3, 3)
    raise DataError(f"{what} must have 6 (Voigt), 9 or 3x3 values, got shape {a.shape}")


def to_voigt(tensor: np.ndarray) -> np.ndarray:
    """Voigt-6 (xx, yy, zz, yz, xz, xy) of a 3×3 tensor, symmetrised."""
    t = 0.5 * (tensor + tensor.T)
    return np.array([t[i, j] for i, j in _VOIGT])


def convert_stress(values, unit: str = "eV/A3") -> np.ndarray:
    """Voigt-6 stress in eV/Å³ from `values` (6, 9 or 3×3) given in `unit` (ASE sign)."""
    return to_voigt(full_tensor(values)) * STRESS_UNITS[stress_unit(unit)]


def stress_from_virial(virial, cell) -> np.ndarray:
    """Voigt-6 stress (eV/Å³, ASE sign) σ = −W / V from a virial W (eV) and the cell (Å)."""
    volume = abs(float(np.linalg.det(np.asarray(cell, dtype=np.float64).reshape(3, 3))))
    if volume < 1e-9:
        raise DataError("a virial needs a 3-D cell to give a stress (cell volume is ~0)")
    return -to_voigt(full_tensor(virial, "virial")) / volume
