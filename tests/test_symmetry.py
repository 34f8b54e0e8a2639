"""Rotation augmentation and the equivariance-error metric."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT

from matscale.data.batch import collate
from matscale.models import build
from matscale.models.base import MaterialModel
from matscale.models.symmetry import (
    equivariance_error, random_rotation, random_rotation_batch, random_rotations, rotate_batch)


def test_random_rotation_is_proper_seeded_and_haar():
    g = torch.Generator().manual_seed(0)
    R = random_rotations(2000, g)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(R @ R.transpose(1, 2), eye.expand(2000, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(2000, dtype=torch.float64), atol=1e-12)
    # Haar: E[R] = 0 and E[R_ij²] = 1/3 (a biased sampler, e.g. uniform Euler angles, fails these)
    assert R.mean(0).abs().max() < 0.05
    assert (R.pow(2).mean(0) - 1 / 3).abs().max() < 0.03
    # the rotation angle θ has density (1 − cos θ)/π, so E[cos θ] = −1/2 (trace = 1 + 2cos θ)
    cos = (R.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2
    assert abs(cos.mean().item() + 0.5) < 0.05
    same = random_rotation(torch.Generator().manual_seed(5)), random_rotation(torch.Generator().manual_seed(5))
    assert torch.equal(*same)


def test_rotate_batch_matches_emt_on_rotated_structures(gm_structures):
    """Rotated labels equal EMT recomputed on rotated positions + cell (checks R σ Rᵀ)."""
    batch = collate(gm_structures, dtype=torch.float64)
    R = random_rotations(batch.num_structures, torch.Generator().manual_seed(1))
    rotated = rotate_batch(batch, R)
    frac = lambda b, k: torch.linalg.solve(b.cell[k].T, b.positions[b.batch == k].T).T  # noqa: E731
    for k, atoms in enumerate(gm_structures):
        new = atoms.copy()
        new.set_cell(rotated.cell[k].numpy(), scale_atoms=False)
        new.positions = rotated.positions[rotated.batch == k].numpy()
        new.calc = EMT()
        np.testing.assert_allclose(new.get_potential_energy(), atoms.get_potential_energy(), atol=1e-9)
        np.testing.assert_allclose(new.get_forces(), rotated.forces[rotated.batch == k].numpy(), atol=1e-9)
        np.testing.assert_allclose(new.get_stress(voigt=False), rotated.stress[k].numpy(), atol=1e-9)
        # fractional coordinates are unchanged because the cell rotates with the atoms
        torch.testing.assert_close(frac(rotated, k), frac(batch, k))
    assert torch.equal(rotated.energy, batch.energy)


def test_random_rotation_batch_rotates_each_structure_differently(gm_structures):
    batch = collate(gm_structures)
    rotated = random_rotation_batch(batch, torch.Generator().manual_seed(3))
    # the rotation of each structure, recovered from its cell, differs between structures
    Rs = [torch.linalg.solve(batch.cell[k].double(), rotated.cell[k].double()).T for k in range(batch.num_structures)]
    for R in Rs:
        assert torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-5)
    assert not torch.allclose(Rs[0], Rs[1], atol=1e-3)
    # same seed, same augmentation
    again = random_rotation_batch(batch, torch.Generator().manual_seed(3))
    assert torch.equal(again.positions, rotated.positions)
    with pytest.raises(ValueError, match="shape"):
        rotate_batch(batch, torch.eye(3).expand(2, 3, 3))


class _Unconstrained(MaterialModel):
    """Reads raw Cartesian positions and cell: no symmetry at all."""

    def __init__(self):
        super().__init__()
        self.atom = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
        self.cell = torch.nn.Linear(9, 9)

    def compute(self, batch):
        h = self.atom(batch.positions)
        energy = torch.zeros(batch.num_structures).index_add_(0, batch.batch, h[:, 0])
        return {"energy": energy, "forces": h[:, 1:], "stress": self.cell(batch.cell.reshape(-1, 9)).view(-1, 3, 3)}


def test_equivariance_error_zero_for_schnet_and_large_for_unconstrained(gm_structures):
    torch.manual_seed(0)
    schnet = build("schnet", "xs")
    err = equivariance_error(schnet, gm_structures, n_rotations=2, seed=0)
    assert err["n_structures"] == len(gm_structures) and err["n_rotations"] == 2
    assert err["energy_rel"] < 1e-5 and err["forces_rel"] < 1e-4 and err["stress_rel"] < 1e-4
    assert err["forces_abs"] < 1e-5
    loose = equivariance_error(_Unconstrained(), gm_structures, n_rotations=2, seed=0)
    assert loose["energy_rel"] > 1e-2 and loose["forces_rel"] > 0.1 and loose["stress_rel"] > 0.1
    # reproducible for a seed, and the model's train/eval mode is restored
    schnet.train()
    assert equivariance_error(schnet, gm_structures, n_rotations=2, seed=0) == err
    assert schnet.training
