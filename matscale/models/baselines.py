"""Naive baselines, fitted in closed form: the floor every trained model must beat.

- `mean`:   E = ē · N with ē the mean energy per atom of the training structures (eV/atom);
- `linear`: E = Σ_atoms c[Z], per-element energies c from least squares of the energy PER
            ATOM on composition fractions, min Σ_s (E_s/N_s − Σ_Z x_sZ c_Z)² with x = n_Z/N,
            so every structure counts once (a fit of total energies weighs a cell by N², and on
            mixed cell sizes it can lose to `mean` on the per-atom metric the loss scores).
            Ridge-regularised towards ē, so elements that are collinear or absent in the
            training data fall back to ē; `mean` is the special case c_Z = ē, so on the training
            set the linear fit's per-atom RMSE is never above the mean baseline's.
Both predict zero forces and the mean training stress (3×3, eV/Å³). Missing labels: the
energies are fitted on the energy-labelled structures, the stress mean on the
stress-labelled ones (zero stress when none has one).

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
        xtx = np.zeros((MAX_Z, MAX_Z))  # Σ_s x_sZ x_sZ'  (x = composition fractions)
        xty = np.zeros(MAX_Z)  # Σ_s x_sZ E_s/N_s
        per_atom_sum = 0.0
        stress_sum = np.zeros((3, 3))
        count = n_stress = 0
        for batch in _batches(data):
            if batch.energy is None or batch.stress is None:
                raise DataError("baseline fit needs labelled training structures (energy and/or stress)")
            numbers = batch.numbers.cpu().numpy()
            b = batch.batch.cpu().numpy()
            counts = np.zeros((batch.num_structures, MAX_Z))
            np.add.at(counts, (b, numbers), 1.0)
            natoms = batch.natoms.cpu().numpy().astype(np.float64)
            has_e = _flag(batch.has_energy, batch.num_structures)
            has_s = _flag(batch.has_stress, batch.num_structures)
            frac = counts[has_e] / natoms[has_e, None]
            per_atom = batch.energy.detach().double().cpu().numpy()[has_e] / natoms[has_e]
            xtx += frac.T @ frac
            xty += frac.T @ per_atom
            per_atom_sum += per_atom.sum()
            stress_sum += batch.stress.detach().double().cpu().numpy()[has_s].sum(axis=0)
            count += int(has_e.sum())
            n_stress += int(has_s.sum())
        if count == 0:
            raise DataError("baseline fit got no training structures with an energy label: check the training "
                            "split is not empty and carries energies")
        coef = self._solve(xtx, xty, per_atom_sum / count)
        self.element_energy.copy_(torch.from_numpy(coef))
        self.mean_stress.copy_(torch.from_numpy(stress_sum / max(n_stress, 1)))
        self.num_fit_structures.fill_(count)
        return self

    def _solve(self, xtx: np.ndarray, xty: np.ndarray, structure_mean: float) -> np.ndarray:
        """Per-element energies (MAX_Z,) eV/atom from the per-atom normal equations."""
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
    def _solve(self, xtx, xty, structure_mean):
        # the mean of E/N over structures: the per-structure quantity the loss scores
        return np.full(MAX_Z, structure_mean)


@register("linear", sizes={"base": {}}, trainable=False,
          description="per-element energies by least squares of energy per atom on composition, zero forces, "
                      "mean stress (closed form)")
class LinearBaseline(ClosedFormBaseline):
    def _solve(self, xtx, xty, structure_mean):
        # E/N = Σ_Z x_Z (ē + δ_Z) with Σ_Z x_Z = 1: solve the ridge normal equations for δ on the elements seen
        seen = np.flatnonzero(np.diag(xtx) > 0)
        a = xtx[np.ix_(seen, seen)]
        rhs = xty[seen] - structure_mean * a.sum(axis=1)
        a = a + RIDGE * np.trace(a) / len(seen) * np.eye(len(seen))
        coef = np.full(MAX_Z, structure_mean)
        coef[seen] += np.linalg.solve(a, rhs)
        return coef


def _flag(flags: torch.Tensor | None, n: int) -> np.ndarray:
    """Bool numpy mask of labelled structures (all True when the batch has no flags)."""
    return np.ones(n, dtype=bool) if flags is None else flags.cpu().numpy().astype(bool)
