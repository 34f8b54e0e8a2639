"""Direct output heads on the final node features x [N, (L+1)², C].

Energy: per-atom invariant MLP on x₀₀ and the atom's invariant edge summary n_i (see
  `EdgeReadout`), summed over atoms. The reference's FFN head reduces to an MLP of x₀₀ alone
  (its l = 0 output sees only x₀₀); n_i is our addition.
Forces: an extra graph attention layer with one output channel kept at l = 1 only;
  coefficients (x, y, z) are the force components (D¹(R) = R in this basis).
Stress: σ = σ₀ I/√3 + Σ_k σ₂,k B_k with B_k the orthonormal traceless symmetric matrices in
  e3nn l = 2 order. σ₀ is invariant (any MLP is fine); σ₂ must rotate as an l = 2 vector, so
  it is a *bias-free linear* map of l = 2 quantities whose channels are gated by invariants —
  exactly equivariant (the reference's MLP with biases and SiLU on the m rows is not).
  The l = 2 quantities: P_i = Σ_{e→i} u_e Y²(r̂_e) ⊗ q_e / avg_degree (edge directions weighted
  by invariant edge features q_e, virial-like) and the node's own l = 2 features x_{i,2}.
  q_e comes from `EdgeReadout` (shared with the energy head). Per-atom outputs are averaged
  over the structure (stress is intensive).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .attention import GraphAttention
from .context import EdgeContext
from .radial import EdgeScalars
from .so3 import Layout


def traceless_basis(dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """(5, 3, 3) orthonormal traceless symmetric matrices in e3nn l = 2 order (y polar)."""
    B = torch.zeros(5, 3, 3, dtype=dtype, device=device)
    s2, s6 = math.sqrt(2.0), math.sqrt(6.0)
    B[0, 0, 2] = B[0, 2, 0] = 1 / s2  # xz
    B[1, 0, 1] = B[1, 1, 0] = 1 / s2  # xy
    B[2, 1, 1], B[2, 0, 0], B[2, 2, 2] = 2 / s6, -1 / s6, -1 / s6  # 2yy − xx − zz
    B[3, 1, 2] = B[3, 2, 1] = 1 / s2  # yz
    B[4, 2, 2], B[4, 0, 0] = 1 / s2, -1 / s2  # zz − xx
    return B


def per_structure_mean(values: torch.Tensor, ctx: EdgeContext) -> torch.Tensor:
    total = values.new_zeros((ctx.num_structures, *values.shape[1:])).index_add_(0, ctx.node_batch, values)
    count = torch.bincount(ctx.node_batch, minlength=ctx.num_structures).clamp_min(1).to(values.dtype)
    return total / count.view(-1, *([1] * (values.dim() - 1)))


class EdgeReadout(nn.Module):
    """Invariant edge summaries shared by the energy and stress heads.

    q_e = MLP((m = 0 edge-frame coefficients of [x_j ‖ x_i]) ⊙ Rad(h_e)) · u_e / avg_degree,
    and their sum at each atom n_i. The m = 0 coefficients are Y_l(r̂)·x_l/√(2l+1): inner
    products of the features with the edge harmonics, hence invariant. Giving the energy head
    this pathway (the reference's energy head sees only x₀₀) lets it learn at the pace of the
    force head under the OMat24 loss weights (force 20 vs energy 2.5), which otherwise starve it.
    """

    def __init__(self, lmax: int, sphere_channels: int, hidden: int, edge_channels: int, num_basis: int,
                 num_elements: int, avg_degree: float) -> None:
        super().__init__()
        C2, L1 = 2 * sphere_channels, lmax + 1
        self.avg_degree = avg_degree
        self.radial = EdgeScalars(num_basis, edge_channels, num_elements, L1 * C2)
        self.edge_mlp = nn.Sequential(nn.Linear(L1 * C2, hidden), nn.LayerNorm(hidden), nn.SiLU(),
                                      nn.Linear(hidden, hidden))

    def forward(self, x: torch.Tensor, ctx: EdgeContext) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, K, C) -> (q (E, Q) envelope-weighted, n (N, Q) = Σ_{e→i} q_e)."""
        E = ctx.source.shape[0]
        m0 = ctx.rotation.edge_m0(ctx.gather_pair(x))  # (E, L+1, 2C) invariants
        m0 = m0 * self.radial(ctx.basis, ctx.z_source, ctx.z_target).reshape(m0.shape)
        q = self.edge_mlp(m0.reshape(E, m0.shape[1] * m0.shape[2])) * (ctx.envelope / self.avg_degree)[:, None]
        return q, ctx.scatter(q)


class EnergyHead(nn.Module):
    """e_i = MLP([x_i,00 ‖ n_i]); E = Σ_i e_i / avg_num_nodes."""

    def __init__(self, in_features: int, hidden: int, avg_num_nodes: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        self.avg_num_nodes = avg_num_nodes

    def forward(self, x: torch.Tensor, n: torch.Tensor, ctx: EdgeContext) -> torch.Tensor:
        e = self.mlp(torch.cat([x[:, 0], n.to(x.dtype)], dim=-1)).squeeze(-1)
        return e.new_zeros(ctx.num_structures).index_add_(0, ctx.node_batch, e) / self.avg_num_nodes


class ForceHead(nn.Module):
    def __init__(self, layout: Layout, sphere_channels: int, hidden_channels: int, num_heads: int,
                 alpha_channels: int, value_channels: int, edge_channels: int, num_basis: int,
                 num_elements: int, grid_resolution: tuple[int, int]) -> None:
        super().__init__()
        self.attn = GraphAttention(layout, sphere_channels, hidden_channels, num_heads, alpha_channels,
                                   value_channels, 1, edge_channels, num_basis, num_elements,
                                   grid_resolution, alpha_drop=0.0, lmin_out=1, lmax_out=1)

    def forward(self, x: torch.Tensor, ctx: EdgeContext) -> torch.Tensor:
        return self.attn(x, ctx)[:, :, 0]  # (N, 3)


class StressHead(nn.Module):
    """σ₀ = MLP([n_i ‖ x_i,00]); σ₂ = W·([P_i ‖ x_i,2] ⊙ sigmoid(G [n_i ‖ x_i,00])), no bias; mean over atoms."""

    def __init__(self, sphere_channels: int, hidden: int) -> None:
        super().__init__()
        width = hidden + sphere_channels
        self.iso = nn.Sequential(nn.Linear(width, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        self.gate = nn.Linear(width, width)
        self.aniso = nn.Linear(width, 1, bias=False)

    def forward(self, x: torch.Tensor, q: torch.Tensor, n: torch.Tensor, ctx: EdgeContext) -> torch.Tensor:
        from e3nn import o3

        y2 = o3.spherical_harmonics(2, ctx.unit.to(q.dtype), normalize=False, normalization="component")
        node_scalar = torch.cat([n, x[:, 0]], dim=-1)  # (N, Q + C) invariants
        node_l2 = torch.cat([ctx.scatter(y2[:, :, None] * q[:, None, :]), x[:, 4:9]], dim=-1)  # (N, 5, Q + C)
        iso = self.iso(node_scalar)  # (N, 1)
        aniso = self.aniso(node_l2 * torch.sigmoid(self.gate(node_scalar))[:, None, :])  # (N, 5, 1)
        iso, aniso = per_structure_mean(iso, ctx), per_structure_mean(aniso[..., 0], ctx)
        eye = torch.eye(3, dtype=iso.dtype, device=iso.device) / math.sqrt(3.0)
        return iso[:, :, None] * eye + torch.einsum("bk,kij->bij", aniso, traceless_basis(iso.dtype, iso.device))
