"""Rotations: Haar-random augmentation and the equivariance error of any model.

Rotating a periodic structure means rotating its Cartesian positions *and* its lattice
vectors, so fractional coordinates are unchanged (the paper's code rotated neither the cell
nor the fractional coordinates). Under a rotation R (positions are row vectors, x ← x Rᵀ):
energy is invariant, forces rotate as f ← f Rᵀ and stress as σ ← R σ Rᵀ.

    random_rotation(generator) -> (3, 3) float64 proper rotation (det +1), Haar-distributed
    rotate_batch(batch, R) -> Batch          R: (3, 3) for all structures or (B, 3, 3) each
    random_rotation_batch(batch, generator) -> Batch   one random rotation per structure
    equivariance_error(model, atoms_list, n_rotations=4, seed=0) -> dict of relative errors
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch

from matscale.data.batch import Batch, collate


def random_rotation(generator: torch.Generator | None = None) -> torch.Tensor:
    """A Haar-random rotation matrix (3, 3), float64, det = +1.

    A unit quaternion drawn from an isotropic 4-D Gaussian is uniform on S³, and the
    quaternion -> rotation map pushes that to the Haar measure on SO(3).
    """
    q = torch.randn(4, generator=generator, dtype=torch.float64)
    w, x, y, z = q / q.norm()
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)]),
        torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)]),
        torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]),
    ])


def random_rotations(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 3, 3) independent Haar-random rotations, float64."""
    return torch.stack([random_rotation(generator) for _ in range(n)]) if n else torch.zeros(0, 3, 3, dtype=torch.float64)


def rotate_batch(batch: Batch, R: torch.Tensor) -> Batch:
    """Rotate positions, cell, forces and stress of every structure (energy is unchanged).

    R is one (3, 3) rotation for all structures or (B, 3, 3), one per structure.
    """
    B = batch.num_structures
    R = torch.as_tensor(R)
    if R.shape == (3, 3):
        R = R.expand(B, 3, 3)
    if R.shape != (B, 3, 3):
        raise ValueError(f"rotation must have shape (3, 3) or ({B}, 3, 3), got {tuple(R.shape)}")
    R = R.to(device=batch.positions.device, dtype=batch.positions.dtype)
    Ra = R[batch.batch]  # (ΣN, 3, 3)
    out = {
        "positions": torch.einsum("nij,nj->ni", Ra, batch.positions),
        "cell": torch.einsum("bij,bkj->bki", R, batch.cell),  # every lattice row a_k ← R a_k
    }
    if batch.forces is not None:
        out["forces"] = torch.einsum("nij,nj->ni", Ra, batch.forces)
    if batch.stress is not None:
        out["stress"] = R @ batch.stress @ R.transpose(1, 2)
    return replace(batch, **out)


def random_rotation_batch(batch: Batch, generator: torch.Generator | None = None) -> Batch:
    """`batch` with one independent Haar-random rotation applied to each structure."""
    return rotate_batch(batch, random_rotations(batch.num_structures, generator))


def _forward(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    with torch.set_grad_enabled(bool(getattr(model, "conservative", False))):
        out = model(batch)
    return {k: out[k].detach().double() for k in ("energy", "forces", "stress")}


def equivariance_error(model: torch.nn.Module, atoms_list: Sequence, n_rotations: int = 4, seed: int = 0,
                       batch_size: int = 16) -> dict[str, float]:
    """How far `model` is from rotation equivariance on the given structures.

    For each of `n_rotations` rounds every structure gets its own Haar-random rotation R
    (seeded, so the metric is reproducible) and the model is run on the rotated input.
    Returns (numerators and denominators pooled over all rounds and structures):
      energy_rel: Σ|E(Rx) − E(x)| / Σ|E(x)|                 (dimensionless)
      forces_rel: ‖F(Rx) − R F(x)‖ / ‖F(x)‖ (Frobenius over all atoms)
      stress_rel: ‖σ(Rx) − R σ(x) Rᵀ‖ / ‖σ(x)‖ (Frobenius over all structures)
      energy_abs: mean |E(Rx) − E(x)| / N in eV/atom; forces_abs: RMS force change in eV/Å;
      stress_abs: RMS stress change in eV/Å³.
    An exactly equivariant model gives ~1e-7 (float32 rounding); an unconstrained one O(1).
    """
    if n_rotations < 1:
        raise ValueError("n_rotations must be >= 1")
    if len(atoms_list) == 0:
        raise ValueError("equivariance_error needs at least one structure")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    sums = {k: 0.0 for k in ("e_num", "e_den", "f_num", "f_den", "s_num", "s_den", "e_abs")}
    n_struct = n_atoms = 0
    try:
        for start in range(0, len(atoms_list), batch_size):
            batch = collate(atoms_list[start:start + batch_size], labels=False, dtype=dtype).to(device)
            ref = _forward(model, batch)
            n_struct += batch.num_structures
            n_atoms += batch.num_atoms
            natoms = batch.natoms.to(torch.float64)
            for _ in range(n_rotations):
                R = random_rotations(batch.num_structures, gen).to(device)
                rot = _forward(model, rotate_batch(batch, R))
                f_exp = torch.einsum("nij,nj->ni", R[batch.batch], ref["forces"])
                s_exp = R @ ref["stress"] @ R.transpose(1, 2)
                de = (rot["energy"] - ref["energy"]).abs()
                sums["e_num"] += float(de.sum())
                sums["e_den"] += float(ref["energy"].abs().sum())
                sums["e_abs"] += float((de / natoms).sum())
                sums["f_num"] += float(((rot["forces"] - f_exp) ** 2).sum())
                sums["f_den"] += float((ref["forces"] ** 2).sum())
                sums["s_num"] += float(((rot["stress"] - s_exp) ** 2).sum())
                sums["s_den"] += float((ref["stress"] ** 2).sum())
    finally:
        model.train(was_training)
    tiny = 1e-30
    return {
        "energy_rel": sums["e_num"] / max(sums["e_den"], tiny),
        "forces_rel": (sums["f_num"] / max(sums["f_den"], tiny)) ** 0.5,
        "stress_rel": (sums["s_num"] / max(sums["s_den"], tiny)) ** 0.5,
        "energy_abs": sums["e_abs"] / (n_struct * n_rotations),
        "forces_abs": (sums["f_num"] / (3 * n_atoms * n_rotations)) ** 0.5,
        "stress_abs": (sums["s_num"] / (9 * n_struct * n_rotations)) ** 0.5,
        "n_structures": n_struct,
        "n_rotations": n_rotations,
    }
