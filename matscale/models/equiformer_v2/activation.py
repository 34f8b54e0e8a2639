"""Non-linearities on SH features: S² grids, separable S² activation, grid MLP, smooth leaky ReLU.

An S² activation samples f = Σ_lm x_lm Y_lm on a (β, α) grid of R_β × R_α points, applies a
point-wise non-linearity and projects back to degree ≤ L with quadrature weights. The
projection is exact for band-limited functions (R_β ≥ 2(L+1), R_α ≥ 2·m_max+1); a
non-linearity creates higher frequencies, so the result commutes with rotations only up to
aliasing, which falls off quickly with the resolution. "Separable" (EquiformerV2 §4): the
l = 0 output is a separate gated scalar SiLU(g), the l > 0 outputs come from the grid.

Where equivariance comes from, and what the grids cost:
- **Edge frame (attention).** The edge frame is fixed up to a roll about the edge axis ŷ,
  so edge-frame operations need only commute with rolls, which shift the grid in α. The β
  resolution therefore does not affect equivariance at all; we use the exact minimum
  R_β = 2(L+1) and spend points on α instead (the reference uses 18 × 18 for every L). This
  is the model's hottest loop (points × channels × edges), so this matters.
- **Nodes (FFN).** Node features rotate arbitrarily, so both directions alias; R × R grid.
Measured (float64, random rotations, max relative error of forces): edge grid
(2(L+1), 4M+6) ≤ 5e-7 on its own; node grid R = 4(L+1)+2 (the default) ~1e-5, 6(L+1) ~1e-7,
8(L+1) ~1e-9 — the reference's 18 × 18 gives ~1e-4 at L = 4 and ~1e-2 at L = 6.

Grid matrices are dense [points, coeffs] T and F with Fᵀ T = I up to degree L, in the layout of
e3nn's `ToS2Grid`/`FromS2Grid` ("component" normalisation: unit-variance coefficients give unit
variance on the grid), built in float64 from e3nn's spherical harmonics (e3nn's own S²-grid
modules carry float32 constants, which caps float64 equivariance tests at ~1e-7).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as nnf
from torch import nn

from matscale.errors import ConfigError

from .so3 import Layout, full_precision


def default_edge_grid(layout: Layout) -> tuple[int, int]:
    """(R_β, R_α) for the edge-frame activation: exact-minimum β, α fine enough for rolls."""
    return 2 * (layout.lmax + 1), 4 * layout.mmax + 6


def default_node_grid(lmax: int) -> int:
    """R for the node (FFN) R × R grid."""
    return 4 * (lmax + 1) + 2


def quadrature_weights(res_beta: int) -> torch.Tensor:
    """Driscoll–Healy weights w_b for ∫₀^π h(β) sin β dβ ≈ Σ_b w_b h(β_b), β_b = (b+½)π/R_β (float64).

    Exact for trigonometric polynomials of degree < R_β, so Fᵀ T = I up to degree L when
    R_β ≥ 2(L+1).
    """
    B = res_beta // 2
    j = torch.arange(res_beta, dtype=torch.float64, device="cpu")[:, None]
    k = torch.arange(B, dtype=torch.float64, device="cpu")[None, :]
    beta = (2 * j + 1) * math.pi / (4 * B)
    series = (torch.sin((2 * j + 1) * (2 * k + 1) * math.pi / (4 * B)) / (2 * k + 1)).sum(-1, keepdim=True)
    return ((2.0 / B) * torch.sin(beta) * series)[:, 0]


def grid_points(res_beta: int, res_alpha: int) -> torch.Tensor:
    """(R_β·R_α, 3) points (sin β sin α, cos β, sin β cos α), β_b = (b+½)π/R_β, α_a = 2πa/R_α, b-major."""
    beta = (torch.arange(res_beta, dtype=torch.float64, device="cpu") + 0.5) * math.pi / res_beta
    alpha = torch.arange(res_alpha, dtype=torch.float64, device="cpu") * 2 * math.pi / res_alpha
    b, a = torch.meshgrid(beta, alpha, indexing="ij")
    return torch.stack([b.sin() * a.sin(), b.cos(), b.sin() * a.cos()], dim=-1).reshape(-1, 3)


@lru_cache(maxsize=64)
def grid_matrices(lmax: int, res_beta: int, res_alpha: int, max_order: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, F), each (R_β·R_α, (L+1)²) float64: grid values = T @ x, coefficients = Fᵀ @ values.

    T[p, lm] = Y_lm(p)/√((2l+1)(L+1)) with component-normalised Y (|Y_l|² = 2l+1): unit-variance
    coefficients give unit variance on the grid. F[p, lm] = ω_p Y_lm(p) √((2l+1)(L+1)) / 4π with
    quadrature weights ω_p (sum 4π), so Fᵀ T = I for |m| ≤ max_order (default L).
    """
    max_order = lmax if max_order is None else max_order
    if res_beta % 2 or res_beta < 2 * (lmax + 1):
        raise ConfigError(f"S² grid res_beta must be even and >= 2(lmax+1) = {2 * (lmax + 1)}, got {res_beta}")
    if res_alpha < 2 * max_order + 1:
        raise ConfigError(f"S² grid res_alpha must be >= 2·m_max+1 = {2 * max_order + 1}, got {res_alpha}")
    with torch.device("cpu"):  # constants: real CPU tensors even inside a `meta` device context
        from e3nn import o3

        Y = o3.spherical_harmonics(list(range(lmax + 1)), grid_points(res_beta, res_alpha), normalize=True,
                                   normalization="component")
    degree = torch.tensor([l for l in range(lmax + 1) for _ in range(2 * l + 1)], dtype=torch.float64, device="cpu")
    norm = torch.sqrt((2 * degree + 1) * (lmax + 1))
    omega = quadrature_weights(res_beta).repeat_interleave(res_alpha) * (2 * math.pi / res_alpha)
    return Y / norm, omega[:, None] * Y * norm / (4 * math.pi)


CHUNK_ELEMENTS = 1 << 17  # grid values per chunk (~0.5 MB in float32): stays in cache


class _GridSiLU(torch.autograd.Function):
    """y = A · SiLU(T · x) column-chunked, recomputing T·x in backward.

    x (K, M), T (P, K), A (K', P). The grid values (P, M) are the largest tensor in the model
    (points × channels × edges); chunking keeps them in cache and never stores them for
    backward, which is several times faster on CPU and saves their memory.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, T: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, T, A)
        step = max(64, CHUNK_ELEMENTS // T.shape[0])
        out = x.new_empty(A.shape[0], x.shape[1])
        for s in range(0, x.shape[1], step):
            out[:, s:s + step] = torch.mm(A, nnf.silu(torch.mm(T, x[:, s:s + step])))
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, T, A = ctx.saved_tensors
        step = max(64, CHUNK_ELEMENTS // T.shape[0])
        gx = torch.empty_like(x)
        At, Tt = A.t(), T.t()
        for s in range(0, x.shape[1], step):
            g = torch.mm(T, x[:, s:s + step])
            sig = torch.sigmoid(g)
            gx[:, s:s + step] = torch.mm(Tt, torch.mm(At, grad[:, s:s + step]) * (sig * (1 + g * (1 - sig))))
        return gx, None, None


def _as_pair(resolution: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(resolution, int):
        return resolution, resolution
    res_beta, res_alpha = resolution
    return int(res_beta), int(res_alpha)


class S2Grid(nn.Module):
    """Grid transform pair for full (truncated=False) or edge-frame m-truncated coefficients.

    Truncated columns follow `Layout.truncated` and carry the c_l rescale on both sides,
    so Fᵀ T = diag(c_l²) (the reference's normalisation for the attention activation).
    Grid values are laid out (P, rows, C) so that both transforms are single large matmuls.
    """

    def __init__(self, layout: Layout, resolution: int | tuple[int, int], truncated: bool = False) -> None:
        super().__init__()
        self.resolution = _as_pair(resolution)
        T, F = grid_matrices(layout.lmax, *self.resolution, max_order=layout.mmax if truncated else None)
        if truncated:
            idx, c = layout.truncated_index, layout.rescale
            T, F = T[:, idx] * c, F[:, idx] * c
        self.register_buffer("to_grid", T.clone(), persistent=False)
        self.register_buffer("from_grid_t", F.t().contiguous(), persistent=False)

    def _apply(self, fn, recurse=True):
        """Follow device moves but keep the float64 matrices (cast per call to the input dtype)."""
        keep = {"to_grid": self.to_grid, "from_grid_t": self.from_grid_t}
        out = super()._apply(fn, recurse)
        for name, value in keep.items():
            setattr(self, name, value.to(getattr(self, name).device))
        return out

    # all transforms run in fp32 (or fp64) with autocast off: the grids are precision-sensitive

    def forward_transform(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K, C) coefficients -> (P, N, C) grid values."""
        x = full_precision(x)
        N, K, C = x.shape
        with torch.autocast(x.device.type, enabled=False):
            flat = x.transpose(0, 1).reshape(K, N * C)
            return torch.mm(self.to_grid.to(x.dtype), flat).view(self.to_grid.shape[0], N, C)

    def inverse_transform(self, f: torch.Tensor) -> torch.Tensor:
        """(P, N, C) grid values -> (N, K, C) coefficients."""
        f = full_precision(f)
        P, N, C = f.shape
        with torch.autocast(f.device.type, enabled=False):
            out = torch.mm(self.from_grid_t.to(f.dtype), f.reshape(P, N * C))
            return out.view(self.from_grid_t.shape[0], N, C).transpose(0, 1)

    def silu_roundtrip(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K, C) -> Fᵀ SiLU(T x) as (N, K, C), fused and chunked (see `_GridSiLU`)."""
        x = full_precision(x)
        N, K, C = x.shape
        with torch.autocast(x.device.type, enabled=False):
            flat = x.transpose(0, 1).reshape(K, N * C)
            out = _GridSiLU.apply(flat, self.to_grid.to(x.dtype), self.from_grid_t.to(x.dtype))
            return out.view(K, N, C).transpose(0, 1)


class SeparableS2Activation(nn.Module):
    """l = 0: SiLU(gate scalars); l > 0: (Fᵀ SiLU(T x))_{l>0}. Row 0 of x must be l = 0."""

    def __init__(self, layout: Layout, resolution: int | tuple[int, int], truncated: bool = False) -> None:
        super().__init__()
        self.grid = S2Grid(layout, resolution, truncated)

    def forward(self, gate: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """gate (N, C), x (N, K, C) -> (N, K, C)."""
        y = self.grid.silu_roundtrip(x)
        return torch.cat([nnf.silu(gate)[:, None, :], y[:, 1:, :]], dim=1)


class GridMLP(nn.Module):
    """Point-wise bias-free MLP on the S² grid: W₃ SiLU(W₂ SiLU(W₁ f)) (OMat24's `use_grid_mlp`)."""

    def __init__(self, layout: Layout, channels: int, resolution: int | tuple[int, int]) -> None:
        super().__init__()
        self.grid = S2Grid(layout, resolution, truncated=False)
        self.mlp = nn.Sequential(nn.Linear(channels, channels, bias=False), nn.SiLU(),
                                 nn.Linear(channels, channels, bias=False), nn.SiLU(),
                                 nn.Linear(channels, channels, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grid.inverse_transform(self.mlp(self.grid.forward_transform(x)))


def smooth_leaky_relu(x: torch.Tensor, negative_slope: float = 0.2) -> torch.Tensor:
    """((1+a)/2) x + ((1−a)/2) x (2σ(x) − 1): a smooth leaky ReLU for attention logits."""
    a = negative_slope
    return 0.5 * (1 + a) * x + 0.5 * (1 - a) * x * (2 * torch.sigmoid(x) - 1)
