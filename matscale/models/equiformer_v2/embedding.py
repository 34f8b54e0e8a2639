"""Initial node features: element embedding at l = 0 plus the edge-degree embedding.

Edge-degree embedding (EquiformerV2 §4): a radial MLP of the edge scalars gives (L+1)·C
m = 0 coefficients in the edge frame (m ≠ 0 are zero); rotated back, they are
Σ_l c_l w_{e,l} ⊗ Y_l(r̂_e)/√(2l+1). Messages are scaled by the cutoff envelope, summed at
the target atom and divided by a fixed average degree.
"""
from __future__ import annotations

import torch
from torch import nn

from .context import EdgeContext
from .radial import EdgeScalars


class NodeEmbedding(nn.Module):
    def __init__(self, lmax: int, channels: int, edge_channels: int, num_basis: int, num_elements: int,
                 avg_degree: float) -> None:
        super().__init__()
        self.lmax, self.channels, self.avg_degree = lmax, channels, avg_degree
        self.element = nn.Embedding(num_elements, channels)
        nn.init.normal_(self.element.weight)
        self.radial = EdgeScalars(num_basis, edge_channels, num_elements, (lmax + 1) * channels)

    def forward(self, numbers: torch.Tensor, ctx: EdgeContext, dtype: torch.dtype) -> torch.Tensor:
        """(N,) atomic numbers -> (N, (L+1)², C) initial features."""
        L1, C = self.lmax + 1, self.channels
        x = torch.zeros(numbers.shape[0], L1 * L1, C, dtype=dtype, device=numbers.device)
        x[:, 0] = self.element(numbers).to(dtype)
        w = self.radial(ctx.basis, ctx.z_source, ctx.z_target).reshape(-1, L1, C) * ctx.envelope[:, None, None]
        return x + ctx.scatter(ctx.rotation.rotate_back_m0(w)) / self.avg_degree
