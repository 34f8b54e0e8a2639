"""Equivariant layer norms for SH features [N, (L+1)², C] (EquiformerV2 §4, "separable" norm).

Both share one statistic per node for all l > 0, built from per-degree squared norms, so the
scale is invariant under rotation and the layer is equivariant; γ_{l,c} scales each degree
and channel, and only l = 0 gets a bias. They run in fp32 (or fp64) with autocast off.

- `layer_norm_sh` (the OMat24 configs): l = 0 is a standard LayerNorm over channels; l > 0 are
  divided by √(s² + ε), s² = mean_c mean_{l≥1} (1/(2l+1)) Σ_m x²_{lm,c}, no centring.
- `rms_norm_sh` (the paper's equivariant RMS norm): subtract the channel mean of l = 0, divide
  every degree by the RMS over all l ≥ 0 (same per-degree averaging), scale by γ, add β at l = 0.
"""
from __future__ import annotations

import torch
from torch import nn

EPS = 1e-5


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class _SHNorm(nn.Module):
    def __init__(self, lmax: int, channels: int) -> None:
        super().__init__()
        self.lmax, self.channels = lmax, channels
        degree = torch.tensor([l for l in range(lmax + 1) for _ in range(2 * l + 1)])
        self.register_buffer("degree", degree, persistent=False)
        self.register_buffer("inv_mult", 1.0 / (2.0 * degree.double() + 1.0), persistent=False)


class LayerNormSH(_SHNorm):
    """OMat24's `layer_norm_sh`: LayerNorm at l = 0, shared RMS scale for l > 0; (L+2)·C parameters."""

    def __init__(self, lmax: int, channels: int) -> None:
        super().__init__(lmax, channels)
        self.scalar = nn.LayerNorm(channels, eps=EPS)
        self.gamma = nn.Parameter(torch.ones(lmax, channels))  # l = 1..L

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_dtype, dt = x.dtype, _compute_dtype(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(dt)
            s = self.scalar(x[:, 0])
            rest = x[:, 1:]
            w = self.inv_mult[1:].to(dt)[None, :, None] / self.lmax
            s2 = (rest.pow(2) * w).sum(1).mean(-1)  # (N,)
            g = self.gamma.to(dt)[self.degree[1:] - 1]  # (K−1, C)
            rest = rest * torch.rsqrt(s2 + EPS)[:, None, None] * g
            return torch.cat([s[:, None], rest], dim=1).to(in_dtype)


class RMSNormSH(_SHNorm):
    """The paper's equivariant RMS norm (`rms_norm_sh`); (L+2)·C parameters."""

    def __init__(self, lmax: int, channels: int) -> None:
        super().__init__(lmax, channels)
        self.gamma = nn.Parameter(torch.ones(lmax + 1, channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_dtype, dt = x.dtype, _compute_dtype(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(dt)
            x0 = x[:, :1] - x[:, :1].mean(-1, keepdim=True)
            x = torch.cat([x0, x[:, 1:]], dim=1)
            w = self.inv_mult.to(dt)[None, :, None] / (self.lmax + 1)
            s2 = (x.pow(2) * w).sum(1).mean(-1)
            x = x * torch.rsqrt(s2 + EPS)[:, None, None] * self.gamma.to(dt)[self.degree]
            x = torch.cat([x[:, :1] + self.beta.to(dt), x[:, 1:]], dim=1)
            return x.to(in_dtype)


def make_norm(kind: str, lmax: int, channels: int) -> nn.Module:
    if kind == "layer_norm_sh":
        return LayerNormSH(lmax, channels)
    if kind == "rms_norm_sh":
        return RMSNormSH(lmax, channels)
    raise ValueError(f"unknown norm {kind!r}; choose 'layer_norm_sh' or 'rms_norm_sh'")
