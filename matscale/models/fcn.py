"""FCN: a per-atom MLP with no interaction between atoms — a lower bound for the real models.

Each atom sees only its element, its own position (Cartesian, and sin/cos of 2π·fractional)
and its structure's lattice (cell, lengths, angle cosines, volume^(1/3)); it never sees
another atom. Input = Embedding(Z) + Linear(geometric features), then `depth` SiLU layers
of width `width`. Energy = Σ_atoms head(h), forces = head(h) per atom (direct), stress =
head(mean_atoms h) → 6 Voigt components; the cell features make stress learnable at all.
Outputs are normalised (see `MaterialModel`).
"""
from __future__ import annotations

import torch
from torch import nn

from matscale.data.batch import Batch
from matscale.models import register
from matscale.models.base import MAX_Z, MaterialModel
from matscale.models.features import (LENGTH_UNIT, NUM_CELL_FEATURES, NUM_PERIODIC_FEATURES, cell_features,
                                      fractional_coordinates, periodic_features)
from matscale.models.heads import TwoLayerMLP, mean_per_structure, sum_per_structure, symmetric_from_voigt

NUM_ATOM_FEATURES = 3 + NUM_PERIODIC_FEATURES + NUM_CELL_FEATURES


class FCN(MaterialModel):
    def __init__(self, width: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.element = nn.Embedding(MAX_Z, width)
        self.geometry = nn.Linear(NUM_ATOM_FEATURES, width)
        self.trunk = nn.Sequential(*(m for _ in range(depth) for m in (nn.SiLU(), nn.Linear(width, width))), nn.SiLU())
        self.energy_head = TwoLayerMLP(width, width, 1)
        self.force_head = TwoLayerMLP(width, width, 3)
        self.stress_head = TwoLayerMLP(width, width, 6)

    def compute(self, batch: Batch) -> dict[str, torch.Tensor]:
        B = batch.num_structures
        features = torch.cat([
            batch.positions / LENGTH_UNIT,
            periodic_features(fractional_coordinates(batch)),
            cell_features(batch.cell)[batch.batch],
        ], dim=-1)
        h = self.trunk(self.element(batch.numbers) + self.geometry(features))
        # heads may run in bf16 under autocast; sum and return in the batch's precision (the
        # base adds reference energies of hundreds of eV, which bf16 cannot resolve)
        dtype = batch.positions.dtype
        energy = sum_per_structure(self.energy_head(h).squeeze(-1).to(dtype), batch.batch, B)
        pooled = mean_per_structure(h, batch.batch, batch.natoms)
        return {
            "energy": energy,
            "forces": self.force_head(h).to(dtype),
            "stress": symmetric_from_voigt(self.stress_head(pooled).to(dtype)),
        }


# width / depth per size: ~1e3 … ~1e7 parameters (xxl ~5e7 for GPUs)
SIZES = {
    "xs": dict(width=16, depth=1),
    "s": dict(width=48, depth=2),
    "m": dict(width=128, depth=3),
    "l": dict(width=384, depth=3),
    "xl": dict(width=1200, depth=4),
    "xxl": dict(width=2048, depth=8),
}

register("fcn", sizes=SIZES, default_size="s",
         description="per-atom MLP on element + own position + cell (no interaction): lower bound")(FCN)
