"""SO(3)-linear layer: one channel-mixing matrix per degree, shared over m; bias on l = 0 only.

Mixing channels within a degree commutes with every Wigner-D, so the layer is exactly
equivariant. `lmax_out` lets a head keep only the degrees it needs (e.g. l = 1 for forces).
"""
from __future__ import annotations

import math

import torch
from torch import nn


class SO3Linear(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, lmax: int, lmax_out: int | None = None,
                 lmin_out: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.lmax, self.lmin_out = lmax, lmin_out
        self.lmax_out = lmax if lmax_out is None else lmax_out
        n_deg = self.lmax_out - lmin_out + 1
        bound = 1.0 / math.sqrt(in_channels)
        self.weight = nn.Parameter(torch.empty(n_deg, out_channels, in_channels).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias and lmin_out == 0 else None
        degree = torch.tensor([l for l in range(lmin_out, self.lmax_out + 1) for _ in range(2 * l + 1)])
        self.register_buffer("expand", degree - lmin_out, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, (L+1)², C_in) -> (N, (lmax_out+1)² − lmin_out², C_out)."""
        lo, hi = self.lmin_out ** 2, (self.lmax_out + 1) ** 2
        w = self.weight.to(x.dtype)[self.expand]  # (K, C_out, C_in)
        out = torch.einsum("nkc,koc->nko", x[:, lo:hi], w)
        if self.bias is not None:
            out = torch.cat([out[:, :1] + self.bias.to(x.dtype), out[:, 1:]], dim=1)
        return out
