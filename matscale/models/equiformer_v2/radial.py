"""Edge scalars: Gaussian radial basis, a smooth cutoff envelope, and radial MLPs.

The reference model has no envelope, so messages jump when a neighbour crosses the cutoff.
Here every edge contribution is multiplied by a C² envelope u(d) that is exactly 1 up to
r_c − w and falls to 0 at r_c with a quintic smoothstep (zero value, slope and curvature at
r_c), so predictions are continuous in the positions (up to the optional top-k neighbour cap).
"""
from __future__ import annotations

import torch
from torch import nn


class GaussianBasis(nn.Module):
    """φ_k(d) = exp(−(d − μ_k)² / (2σ²)), μ_k evenly spaced on [0, cutoff] Å, σ = width_factor·Δ."""

    def __init__(self, cutoff: float, num_basis: int, width_factor: float = 2.0) -> None:
        super().__init__()
        if num_basis < 2:
            raise ValueError("num_basis must be >= 2")
        centers = torch.linspace(0.0, cutoff, num_basis)
        self.register_buffer("centers", centers)
        self.sigma = width_factor * cutoff / (num_basis - 1)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        """(E,) distances Å -> (E, num_basis)."""
        return torch.exp(-0.5 * ((d[:, None] - self.centers.to(d.dtype)) / self.sigma) ** 2)


def smooth_envelope(d: torch.Tensor, cutoff: float, width: float) -> torch.Tensor:
    """u(d) = 1 for d ≤ cutoff − width, quintic smoothstep down to 0 at cutoff (C²)."""
    t = ((d - (cutoff - width)) / width).clamp(0.0, 1.0)
    return 1.0 - t ** 3 * (10.0 - 15.0 * t + 6.0 * t * t)


class RadialMLP(nn.Module):
    """Lin → LayerNorm → SiLU → Lin → LayerNorm → SiLU → Lin: edge scalars to per-edge weights."""

    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.LayerNorm(hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.SiLU(),
            nn.Linear(hidden, out_features),
        )
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class EdgeScalars(nn.Module):
    """h_e = [φ(d_e) ‖ s(Z_source) ‖ t(Z_target)] followed by a RadialMLP to `out_features`.

    Every edge-using module owns one: its own source/target element embeddings (U(±1e-3)
    init, as in the reference) and radial MLP.
    """

    def __init__(self, num_basis: int, edge_channels: int, num_elements: int, out_features: int) -> None:
        super().__init__()
        self.source = nn.Embedding(num_elements, edge_channels)
        self.target = nn.Embedding(num_elements, edge_channels)
        nn.init.uniform_(self.source.weight, -1e-3, 1e-3)
        nn.init.uniform_(self.target.weight, -1e-3, 1e-3)
        self.mlp = RadialMLP(num_basis + 2 * edge_channels, edge_channels, out_features)

    def forward(self, basis: torch.Tensor, z_source: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
        h = torch.cat([basis, self.source(z_source).to(basis.dtype), self.target(z_target).to(basis.dtype)], dim=-1)
        return self.mlp(h)
