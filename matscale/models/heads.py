"""Small building blocks shared by the direct-output models: two-layer SiLU MLPs (heads), per-structure
sums and means over atoms, and the symmetric 3×3 stress built from six numbers.

Direct models (fcn, transformer, …) predict forces per atom and stress per structure with
their own heads instead of differentiating the energy, so stress is symmetric by construction
(six outputs, Voigt order xx, yy, zz, yz, xz, xy as in ASE) but not tied to the energy.
"""
from __future__ import annotations

import torch
from torch import nn


class TwoLayerMLP(nn.Sequential):
    """Linear(in → hidden) · SiLU · Linear(hidden → out): output heads and input encoders."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))


def sum_per_structure(values: torch.Tensor, index: torch.Tensor, num_structures: int) -> torch.Tensor:
    """Σ over the atoms of each structure: values (ΣN, …) with index (ΣN,) → (B, …)."""
    out = values.new_zeros((num_structures, *values.shape[1:]))
    return out.index_add_(0, index, values)


def mean_per_structure(values: torch.Tensor, index: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean over the atoms of each structure; counts (B,) atoms per structure (≥ 1)."""
    total = sum_per_structure(values, index, counts.shape[0])
    return total / counts.clamp(min=1).to(values.dtype).view(-1, *([1] * (values.dim() - 1)))


# position of each 3×3 entry in the Voigt vector (xx, yy, zz, yz, xz, xy)
_VOIGT_INDEX = torch.tensor([[0, 5, 4], [5, 1, 3], [4, 3, 2]])


def symmetric_from_voigt(six: torch.Tensor) -> torch.Tensor:
    """(B, 6) in Voigt order xx, yy, zz, yz, xz, xy → symmetric (B, 3, 3)."""
    return six[:, _VOIGT_INDEX.to(six.device)]
