"""One pre-norm transformer block: x ← x + DP(Attn(N₁x)); x ← x + DP(FFN(N₂x)).

DP is graph-level drop path: in training each structure's branch output is dropped with
probability p and survivors are scaled by 1/(1−p).
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import GraphAttention
from .context import EdgeContext
from .ffn import FeedForward
from .norm import make_norm
from .so3 import Layout


def drop_path(x: torch.Tensor, p: float, training: bool, ctx: EdgeContext) -> torch.Tensor:
    if not training or p <= 0:
        return x
    keep = torch.rand(ctx.num_structures, device=x.device) >= p
    scale = keep.to(x.dtype) / (1.0 - p)
    return x * scale[ctx.node_batch].view(-1, *([1] * (x.dim() - 1)))


class TransformerBlock(nn.Module):
    def __init__(self, layout: Layout, sphere_channels: int, hidden_channels: int, num_heads: int,
                 alpha_channels: int, value_channels: int, ffn_channels: int, edge_channels: int,
                 num_basis: int, num_elements: int, norm: str, grid_resolution: tuple[int, int],
                 ffn_grid_resolution: int, grid_mlp: bool, alpha_drop: float, drop_path: float) -> None:
        super().__init__()
        C = sphere_channels
        self.norm1 = make_norm(norm, layout.lmax, C)
        self.attn = GraphAttention(layout, C, hidden_channels, num_heads, alpha_channels, value_channels, C,
                                   edge_channels, num_basis, num_elements, grid_resolution, alpha_drop)
        self.norm2 = make_norm(norm, layout.lmax, C)
        self.ffn = FeedForward(layout.lmax, C, ffn_channels, C, grid_mlp, ffn_grid_resolution)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor, ctx: EdgeContext) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x), ctx), self.drop_path, self.training, ctx)
        return x + drop_path(self.ffn(self.norm2(x)), self.drop_path, self.training, ctx)
