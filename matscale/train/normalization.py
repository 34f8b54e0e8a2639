"""Fit per-element reference energies and output scales on the TRAINING subset only.

Reference energies: ridge-regularised least squares of energy per atom on composition
fractions, E/N ≈ Σ_Z (n_Z/N) · e_Z (eV/atom), so large and small structures weigh alike.
Scales (what a model's normalised outputs are multiplied by, and what the loss divides by):
  energy  RMS over structures of the residual per atom (E − Σ e_Z)/N       eV/atom
  force   RMS force component                                             eV/Å
  stress  RMS stress component                                            eV/Å³
The model sums per-atom contributions, so its energy scale is the per-atom residual scale.
Elements absent from the training subset get reference 0 (the model cannot know them).
Missing labels: each quantity is fitted on the structures that carry it (references and the
energy scale on energy-labelled ones, the force scale on force-labelled ones, ...); a
quantity no structure carries gets scale 1. `coverage` records the counts and `elements` the
atomic numbers seen in training (the ASE calculator warns about others).

Loss units. The same three scales, fitted once on a fixed random sample of the whole training
split (`train.data.loss_unit_structures`: 2000 structures, seed 0), divide the loss terms.
They are identical for every run on a dataset, so validation losses of runs with different
fractions and seeds are in the same units and can be compared and fitted (scales fitted on a
1 % subset differ from the full split's by up to ~75 % for stress on the default set). The
model's own normalisation above still comes from its training subset alone; the loss units
are three numbers that define the metric and never enter the model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

from matscale.data.integrity import implausible
from matscale.errors import DataError
from matscale.models.base import MAX_Z

_FLOOR = 1e-6  # a scale below this (constant data) falls back to 1 so nothing divides by ~0


@dataclass
class Normalization:
    energy_ref: np.ndarray  # (MAX_Z,) eV/atom per element
    energy_scale: float  # eV/atom
    force_scale: float  # eV/Å
    stress_scale: float  # eV/Å³
    n_structures: int = 0
    elements: tuple = ()  # atomic numbers present in the training structures
    coverage: dict | None = None  # {"structures", "energy", "forces", "stress"}: labelled counts

    def apply(self, model) -> None:
        """Write into the model's buffers (`MaterialModel.set_normalization`)."""
        model.set_normalization(self.energy_ref, self.energy_scale, self.force_scale, self.stress_scale)

    def loss_scales(self):
        from matscale.train.loss import LossScales

        return LossScales(self.energy_scale, self.force_scale, self.stress_scale)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["energy_ref"] = {int(z): float(v) for z, v in enumerate(self.energy_ref) if v != 0.0}
        d["elements"] = [int(z) for z in self.elements]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        ref = np.zeros(MAX_Z)
        for z, v in d["energy_ref"].items():
            ref[int(z)] = v
        elements = tuple(int(z) for z in d.get("elements") or d["energy_ref"])  # older: elements with a reference
        return cls(ref, d["energy_scale"], d["force_scale"], d["stress_scale"], d.get("n_structures", 0),
                   elements, d.get("coverage"))


def _labels(atoms):
    """(energy or None, forces or None, stress or None) from the calculator's results."""
    res = getattr(atoms.calc, "results", None) or {}
    get = lambda k: None if res.get(k) is None else np.asarray(res[k], dtype=float)  # noqa: E731
    energy, forces, stress = get("energy"), get("forces"), get("stress")
    if energy is None and forces is None and stress is None:
        raise DataError(f"structure {atoms.info.get('sid', '?')} has no energy/forces/stress labels; "
                        "training needs at least one of them on every structure")
    if len(atoms) == 0:
        raise DataError(f"structure {atoms.info.get('sid', '?')} has zero atoms; drop it (energy per atom is undefined)")
    odd = implausible(float("nan") if energy is None else float(energy), len(atoms),
                      np.zeros((0, 3)) if forces is None else forces, np.zeros(6) if stress is None else stress)
    if odd:
        raise DataError(f"structure {atoms.info.get('sid', '?')}: {odd} is not physical; drop or fix it")
    return (None if energy is None else float(energy)), forces, stress


def fit_normalization(structures: Iterable, ridge: float = 1e-6) -> Normalization:
    """Fit references and scales from labelled `ase.Atoms` (the training subset)."""
    comp, e_per_atom = [], []
    f_sq, f_n, s_sq, s_n = 0.0, 0, 0.0, 0
    n_total, n_forces, n_stress = 0, 0, 0
    seen = np.zeros(MAX_Z, dtype=bool)
    for atoms in structures:
        energy, forces, stress = _labels(atoms)
        n = len(atoms)
        n_total += 1
        counts = np.bincount(atoms.numbers, minlength=MAX_Z)[:MAX_Z]
        seen |= counts > 0
        if energy is not None:
            comp.append(counts / n)
            e_per_atom.append(energy / n)
        if forces is not None:
            f_sq += float(np.sum(forces ** 2))
            f_n += forces.size
            n_forces += 1
        if stress is not None:
            full = _voigt_to_full(stress)
            s_sq += float(np.sum(full ** 2))
            s_n += full.size
            n_stress += 1
    if not n_total:
        raise DataError("cannot fit normalisation: the training subset is empty; raise frac or check the data")
    ref = np.zeros(MAX_Z)
    e_scale = 1.0
    if comp:
        X = np.asarray(comp)
        y = np.asarray(e_per_atom)
        present = np.flatnonzero(X.sum(0) > 0)
        Xp = X[:, present]
        A = Xp.T @ Xp + ridge * len(y) * np.eye(len(present))
        w = np.linalg.solve(A, Xp.T @ y)
        ref[present] = w
        resid = y - Xp @ w
        e_scale = float(np.sqrt(np.mean(resid ** 2)))
    f_scale = float(np.sqrt(f_sq / max(f_n, 1)))
    s_scale = float(np.sqrt(s_sq / max(s_n, 1)))
    coverage = {"structures": n_total, "energy": len(e_per_atom), "forces": n_forces, "stress": n_stress}
    return Normalization(ref, *(v if v > _FLOOR else 1.0 for v in (e_scale, f_scale, s_scale)),
                         n_structures=n_total, elements=tuple(int(z) for z in np.flatnonzero(seen)),
                         coverage=coverage)


def _voigt_to_full(stress: np.ndarray) -> np.ndarray:
    if stress.shape == (6,):
        xx, yy, zz, yz, xz, xy = stress
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return stress.reshape(3, 3)
