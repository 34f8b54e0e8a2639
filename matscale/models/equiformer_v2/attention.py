"""Equivariant graph attention (EquiformerV2 §4) with a smooth cutoff.

For each edge j -> i: rotate [x_j ‖ x_i] into the m-truncated edge frame; SO2Conv₁ (radially
gated) gives hidden features u_e, attention features a_e (h heads × A) and gate scalars g_e;
the separable S² activation (edge-frame grid) mixes u_e; SO2Conv₂ gives values v_e (h × V).
Logits ℓ_{e,k} = w_kᵀ SLReLU(LN_A(a_{e,k})) are re-normalised by a softmax over the edges
entering i; messages α_e·v_e are rotated back (with the c_l rescale), summed at i and mixed
by an SO(3)-linear layer.

Smoothness (not in the reference): the softmax weights are u_e·exp(ℓ_e) / Σ u·exp(ℓ) and the
values are multiplied by u_e, with u the cutoff envelope, so an edge entering or leaving the
cutoff sphere — including a node's only edge — contributes continuously.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .activation import SeparableS2Activation, smooth_leaky_relu
from .context import EdgeContext
from .linear import SO3Linear
from .radial import EdgeScalars
from .so2 import SO2Convolution, radial_size
from .so3 import Layout


def edge_softmax(logits: torch.Tensor, target: torch.Tensor, num_nodes: int, weight: torch.Tensor) -> torch.Tensor:
    """α_e = w_e exp(ℓ_e) / Σ_{e'→i} w_e' exp(ℓ_e') per head; logits (E, h), weight (E,) ≥ 0."""
    tiny = torch.finfo(logits.dtype).tiny ** 0.5
    z = logits + torch.log(weight.clamp_min(tiny))[:, None]
    h = z.shape[1]
    idx = target[:, None].expand(-1, h)
    zmax = z.new_full((num_nodes, h), -torch.inf).scatter_reduce(0, idx, z.detach(), "amax", include_self=True)
    ex = torch.exp(z - zmax[target])
    den = ex.new_zeros(num_nodes, h).index_add_(0, target, ex)
    return ex / den[target]


class GraphAttention(nn.Module):
    def __init__(self, layout: Layout, sphere_channels: int, hidden_channels: int, num_heads: int,
                 alpha_channels: int, value_channels: int, out_channels: int, edge_channels: int,
                 num_basis: int, num_elements: int, grid_resolution: tuple[int, int],
                 alpha_drop: float = 0.0, lmin_out: int = 0, lmax_out: int | None = None) -> None:
        super().__init__()
        self.layout = layout
        self.heads, self.alpha_ch, self.value_ch = num_heads, alpha_channels, value_channels
        C2 = 2 * sphere_channels
        self.radial = EdgeScalars(num_basis, edge_channels, num_elements, C2 * radial_size(layout))
        self.conv1 = SO2Convolution(layout, C2, hidden_channels,
                                    extra=num_heads * alpha_channels + hidden_channels)
        self.act = SeparableS2Activation(layout, grid_resolution, truncated=True)
        self.conv2 = SO2Convolution(layout, hidden_channels, num_heads * value_channels, m0_bias=True)
        self.alpha_norm = nn.LayerNorm(alpha_channels)
        bound = 1.0 / math.sqrt(alpha_channels)
        self.alpha_dot = nn.Parameter(torch.empty(num_heads, alpha_channels).uniform_(-bound, bound))
        self.alpha_drop = nn.Dropout(alpha_drop) if alpha_drop > 0 else nn.Identity()
        self.out = SO3Linear(num_heads * value_channels, out_channels, layout.lmax,
                             lmax_out=lmax_out, lmin_out=lmin_out, bias=lmin_out == 0)

    def forward(self, x: torch.Tensor, ctx: EdgeContext) -> torch.Tensor:
        """x (N, (L+1)², C), already normalised -> (N, K_out, out_channels)."""
        E = ctx.source.shape[0]
        rot = ctx.rotation
        msg = rot.rotate(ctx.gather_pair(x))  # (E, N_M, 2C)
        gate = self.radial(ctx.basis, ctx.z_source, ctx.z_target)
        hidden, extra = self.conv1(msg, gate)
        hA = self.heads * self.alpha_ch
        a, g = extra[:, :hA].reshape(E, self.heads, self.alpha_ch), extra[:, hA:]
        hidden = self.act(g, hidden)
        value, _ = self.conv2(hidden)  # (E, N_M, h·V)

        logits = (smooth_leaky_relu(self.alpha_norm(a)) * self.alpha_dot.to(a.dtype)).sum(-1)  # (E, h)
        alpha = edge_softmax(logits, ctx.target, ctx.num_nodes, ctx.envelope)
        alpha = self.alpha_drop(alpha) * ctx.envelope[:, None]
        NM = self.layout.num_truncated
        value = value.reshape(E, NM, self.heads, self.value_ch) * alpha[:, None, :, None]
        out = ctx.scatter(rot.rotate_back(value.reshape(E, NM, self.heads * self.value_ch)))
        return self.out(out)
