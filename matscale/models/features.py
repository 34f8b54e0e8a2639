"""Geometric input features for the unconstrained models (fcn, transformer).

These models see raw coordinates, so the features fix only units and periodicity:
Cartesian positions and lengths enter in units of `LENGTH_UNIT` Å (so typical values are
O(1)), fractional coordinates enter as sin/cos of 2π·f (continuous across the periodic
boundary), and the lattice enters as its vectors, lengths, angle cosines and volume^(1/3).
No symmetry is built in: a rotated structure gives different features.
"""
from __future__ import annotations

import math

import torch

from matscale.data.batch import Batch
from matscale.errors import DataError

LENGTH_UNIT = 10.0  # Å: Cartesian inputs are divided by this

NUM_PERIODIC_FEATURES = 6  # sin, cos of 2π·f for three fractional coordinates
NUM_CELL_FEATURES = 16  # cell (9) + lengths (3) + angle cosines (3) + volume^(1/3) (1)
NUM_LATTICE_VECTOR_FEATURES = 10  # vector (3) + length + 2 angle cosines + volume^(1/3) + one-hot (3)


def _check_cells(cell: torch.Tensor) -> torch.Tensor:
    """|det| per structure (Å³); a singular cell means no fractional coordinates exist."""
    volume = torch.linalg.det(cell).abs()
    if cell.device.type != "meta" and volume.numel() and bool((volume < 1e-6).any()):
        bad = int(torch.nonzero(volume < 1e-6)[0, 0])
        raise DataError(f"structure {bad} of the batch has a singular cell (volume {float(volume[bad]):.3g} Å³); "
                        "fcn and transformer need 3D periodic cells: give every structure a full lattice")
    return volume


def fractional_coordinates(batch: Batch) -> torch.Tensor:
    """(ΣN, 3) fractional coordinates f with positions = f · cell (cell rows are lattice vectors)."""
    _check_cells(batch.cell)
    inverse = torch.linalg.inv(batch.cell)
    return torch.einsum("ni,nij->nj", batch.positions, inverse[batch.batch])


def periodic_features(frac: torch.Tensor) -> torch.Tensor:
    """(ΣN, 6): sin and cos of 2π·f, identical for images of the same atom."""
    angle = 2 * math.pi * frac
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


def _lengths_and_cosines(cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lengths |a|, |b|, |c| (B, 3) in Å and cosines of (b,c), (a,c), (a,b) (B, 3)."""
    lengths = cell.norm(dim=-1)
    unit = cell / lengths.clamp(min=1e-12).unsqueeze(-1)
    cosines = torch.stack([
        (unit[:, 1] * unit[:, 2]).sum(-1), (unit[:, 0] * unit[:, 2]).sum(-1), (unit[:, 0] * unit[:, 1]).sum(-1),
    ], dim=-1)
    return lengths, cosines


def cell_features(cell: torch.Tensor) -> torch.Tensor:
    """(B, 16) per-structure lattice description: cell, lengths, angle cosines, volume^(1/3)."""
    volume = _check_cells(cell)
    lengths, cosines = _lengths_and_cosines(cell)
    return torch.cat([
        cell.reshape(-1, 9) / LENGTH_UNIT, lengths / LENGTH_UNIT, cosines,
        volume.pow(1 / 3).unsqueeze(-1) / LENGTH_UNIT,
    ], dim=-1)


def lattice_vector_features(cell: torch.Tensor) -> torch.Tensor:
    """(B, 3, 10) one row per lattice vector k: a_k, |a_k|, cosines with the other two
    vectors, volume^(1/3) (all lengths in LENGTH_UNIT) and a one-hot of k."""
    volume = _check_cells(cell)
    lengths, cosines = _lengths_and_cosines(cell)
    # cosines[:, k] is the angle *opposite* to vector k; vector k touches the other two
    touching = cosines[:, [[1, 2], [0, 2], [0, 1]]]  # (B, 3, 2)
    one_hot = torch.eye(3, dtype=cell.dtype, device=cell.device).expand(cell.shape[0], 3, 3)
    return torch.cat([
        cell / LENGTH_UNIT, (lengths / LENGTH_UNIT).unsqueeze(-1), touching,
        (volume.pow(1 / 3) / LENGTH_UNIT).view(-1, 1, 1).expand(-1, 3, 1), one_hot,
    ], dim=-1)


def index_in_structure(batch: Batch) -> torch.Tensor:
    """(ΣN,) position of every atom inside its own structure (0 … N−1)."""
    return torch.arange(batch.num_atoms, device=batch.numbers.device) - batch.ptr[:-1][batch.batch]


def sinusoidal_encoding(index: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """(n, dim) Transformer sinusoidal encoding of integer positions (no parameters)."""
    half = dim // 2
    freq = torch.exp(-math.log(base) * torch.arange(half, device=index.device, dtype=torch.float32) / max(half, 1))
    angle = index.to(torch.float32).unsqueeze(-1) * freq
    enc = torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)
    if dim % 2:
        enc = torch.cat([enc, enc.new_zeros(enc.shape[0], 1)], dim=-1)
    return enc
