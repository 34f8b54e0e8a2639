"""Naive baselines, fitted in closed form: the floor every trained model must beat.

- `mean`:   E = ē · N with ē the mean energy per atom of the training structures (eV/atom);
- `linear`: E = Σ_atoms c[Z], per-element energies c from least squares of total energy on
            composition (ridge-regularised towards ē, so elements that are collinear or absent
            in the training data fall back to ē).
Both predict zero forces and the mean training stress (3×3, eV/Å³).

They have no trainable parameters. The training loop calls `model.fit(data)` once instead of
running SGD, where `data` is an iterable of labelled `Batch`es (e.g. the train DataLoader)
or of `ase.Atoms` with energy/forces/stress results; statistics are accumulated in float64
in one pass (normal equations), so any number of batches fits in memory. Outputs are in
physical units: the normalisation buffers of `MaterialModel` are not used.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from matscale.data.batch import Batch, collate
from matscale.errors import DataError
from matscale.models import register
from matscale.models.base import MAX_Z, MaterialModel

RIDGE = 1e-9  # relative to the mean diagonal of the normal matrix: regularises, does not bias


def _batches(data: Iterable, chunk: int = 256) -> Iterable[Batch]:
    """Yield labelled Batches from an iterable of Batches or of ase.Atoms (collated in chunks)."""
    pending = []
    for item in data:
        if isinstance(item, Batch):
            yield item
        elif hasattr(item, "get_atomic_numbers"):
            pending.append(item)
            if len(pending) == chunk:
                yield _collate_labelled(pending)
                pending = []
        else:
            raise DataError(f"baseline fit expects Batch or ase.Atoms items, got {type(item).__name__}")
    if pending:
        yield _collate_labelled(pending)


def _collate_labelled(atoms_list: list) -> Batch:
    try:
        return collate(atoms_list, labels=True, dtype=torch.float64)
    except ValueError as exc:
        raise DataError(f"baseline fit needs labelled training structures: {exc}") from exc


class ClosedFormBaseline(MaterialModel):
    """Shared accumulation of composition/energy/stress statistics; subclasses solve."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("element_energy", torch.zeros(MAX_Z, dtype=torch.float64))  # eV/atom
        self.register_buffer("mean_stress", torch.zeros(3, 3, dtype=torch.float64))  # eV/Å³
        self.register_buffer("num_fit_structures", torch.zeros((), dtype=torch.int64))

    @property
    def fitted(self) -> bool:
        return int(self.num_fit_structures) > 0

    @torch.no_grad()
    def fit(self, data: Iterable) -> "ClosedFormBaseline":
        """Fit from labelled training data (Batches or ase.Atoms); returns self."""
        xtx = np.zeros((MAX_Z, MAX_Z))  # Σ n_Z n_Z'
        xty = np.zeros(MAX_Z)  # Σ n_Z E
        energy_sum = atoms_sum = per_atom_sum = 0.0
        stress_sum = np.zeros((3, 3))
        count = 0
        for batch in _batches(data):
            if batch.energy is None or batch.stress is None:
                raise DataError("baseline fit needs energy and stress labels on every training structure")
            numbers = batch.numbers.cpu().numpy()
            b = batch.batch.cpu().numpy()
            counts = np.zeros((batch.num_structures, MAX_Z))
            np.add.at(counts, (b, numbers), 1.0)
            energy = batch.energy.detach().double().cpu().numpy()
            natoms = batch.natoms.cpu().numpy().astype(np.float64)
            xtx += counts.T @ counts
            xty += counts.T @ energy
            energy_sum += energy.sum()
            atoms_sum += natoms.sum()
            per_atom_sum += (energy / natoms).sum()
            stress_sum += batch.stress.detach().double().cpu().numpy().sum(axis=0)
            count += batch.num_structures
        if count == 0:
            raise DataError("baseline fit got no training structures: check the training split is not empty")
        coef = self._solve(xtx, xty, energy_sum / atoms_sum, per_atom_sum / count)
        self.element_energy.copy_(torch.from_numpy(coef))
        self.mean_stress.copy_(torch.from_numpy(stress_sum / count))
        self.num_fit_structures.fill_(count)
        return self

    def _solve(self, xtx: np.ndarray, xty: np.ndarray, atom_mean: float, structure_mean: float) -> np.ndarray:
        raise NotImplementedError

    def compute(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Physical units (eV, eV/Å, eV/Å³), not normalised: see the module docstring."""
        dtype = batch.positions.dtype
        per_atom = self.element_energy.to(dtype)[batch.numbers]
        energy = per_atom.new_zeros(batch.num_structures).index_add_(0, batch.batch, per_atom)
        return {
            "energy": energy,
            "forces": torch.zeros_like(batch.positions),
            "stress": self.mean_stress.to(dtype).expand(batch.num_structures, 3, 3).clone(),
        }

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.compute(batch)


@register("mean", sizes={"base": {}}, trainable=False,
          description="global mean energy per atom × N, zero forces, mean stress (closed form)")
class MeanBaseline(ClosedFormBaseline):
    def _solve(self, xtx, xty, atom_mean, structure_mean):
        # the mean of E/N over structures: the per-structure quantity the loss scores
        return np.full(MAX_Z, structure_mean)


@register("linear", sizes={"base": {}}, trainable=False,
          description="per-element energies by least squares on composition, zero forces, mean stress (closed form)")
class LinearBaseline(ClosedFormBaseline):
    def _solve(self, xtx, xty, atom_mean, structure_mean):
        # E = Σ_Z n_Z (ē + δ_Z): solve the ridge normal equations for δ on the elements seen
        seen = np.flatnonzero(np.diag(xtx) > 0)
        a = xtx[np.ix_(seen, seen)]
        rhs = xty[seen] - atom_mean * a.sum(axis=1)
        a = a + RIDGE * np.trace(a) / len(seen) * np.eye(len(seen))
        coef = np.full(MAX_Z, atom_mean)
        coef[seen] += np.linalg.solve(a, rhs)
        return coef
