"""Equivariant feed-forward network on node features (EquiformerV2 §4; OMat24's grid MLP).

s = SiLU(W_s x₀₀ + b_s) ∈ ℝ^F;  u = SO3Lin₁(x) ∈ [(L+1)², F];
grid MLP (OMat24, `grid_mlp=True`): u′ = Fᵀ W₃ SiLU(W₂ SiLU(W₁ T u)), point-wise on the S² grid;
separable S² activation (the paper's default): u′ = (Fᵀ SiLU(T u))_{l>0};
in both cases u′₀₀ := s, then SO3Lin₂(u′) -> [(L+1)², C_out].
"""
from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import nn

from .activation import GridMLP, SeparableS2Activation
from .linear import SO3Linear
from .so3 import Layout


class FeedForward(nn.Module):
    def __init__(self, lmax: int, channels: int, hidden: int, out_channels: int, grid_mlp: bool,
                 grid_resolution: int) -> None:
        super().__init__()
        layout = Layout(lmax, lmax)
        self.scalar = nn.Linear(channels, hidden)
        nn.init.zeros_(self.scalar.bias)
        self.lin1 = SO3Linear(channels, hidden, lmax)
        self.grid_mlp = GridMLP(layout, hidden, grid_resolution) if grid_mlp else None
        self.act = None if grid_mlp else SeparableS2Activation(layout, grid_resolution)
        self.lin2 = SO3Linear(hidden, out_channels, lmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scalar(x[:, 0])
        u = self.lin1(x)
        if self.grid_mlp is not None:
            u = self.grid_mlp(u)
            u = torch.cat([nnf.silu(s)[:, None], u[:, 1:]], dim=1)
        else:
            u = self.act(s, u)
        return self.lin2(u)
