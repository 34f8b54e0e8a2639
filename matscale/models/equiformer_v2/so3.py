"""Real spherical-harmonic layouts and per-edge Wigner-D rotations (e3nn convention).

Features are real SH coefficients indexed i = l² + l + m with **y the polar axis**; for l = 1
the components are (x, y, z), so D¹(R) = R. A node tensor is [N, (L+1)², C].

Edge frame: a rotation R_e with R_e r̂_e = +ŷ. We take the deterministic choice
R_e = X(−β) Y(−α), where (α, β) are the e3nn angles of r̂_e (r̂ = Y(α) X(β) ŷ); the roll about
the edge is irrelevant because every edge-frame operation is equivariant to rolls about ŷ.
D^l(R_e) = J_l 𝒴_l(−β) J_l 𝒴_l(−α), where 𝒴_l(θ) = D^l of a rotation about y (cos mθ on the
diagonal, −sin mθ at (m, −m)) and J_l = D^l of the π-rotation about (x̂+ŷ)/√2, which swaps the
x and y axes so that X(β) = J Y(β) J. J_l is computed once per degree in float64; per
edge we only evaluate sines and cosines and small block products: exact, and far faster
than e3nn's per-edge matrix exponentials. β = atan2(√(x²+z²), y) keeps float32 digits near
the poles, where arccos(y) loses them.

m-truncation keeps the coefficients 𝓘_M = {(l, m): |m| ≤ min(l, M)} in **m-major order**
[m=0: l=0..L | m=+1: l=1..L | m=−1: l=1..L | m=+2 ... ] so the SO(2) convolution slices
contiguous blocks. Rotating back rescales degree l > M by c_l = √((2l+1)/(2M+1)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import torch


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 -> fp32 (rotations, grids and norms stay in fp32 under mixed precision)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def sh_index(l: int, m: int) -> int:
    """Position of coefficient (l, m) in a full [(L+1)²] SH vector."""
    return l * l + l + m


@dataclass(frozen=True)
class Layout:
    """Index bookkeeping for degree lmax and order cut-off mmax."""

    lmax: int
    mmax: int

    def __post_init__(self) -> None:
        if self.lmax < 1 or not 0 <= self.mmax <= self.lmax:
            raise ValueError(f"need lmax >= 1 and 0 <= mmax <= lmax, got lmax={self.lmax}, mmax={self.mmax}")

    @property
    def dim(self) -> int:
        """(L+1)²: coefficients of a full SH vector."""
        return (self.lmax + 1) ** 2

    @cached_property
    def degree_of(self) -> torch.Tensor:
        """(dim,) degree l of each full coefficient."""
        return torch.tensor([l for l in range(self.lmax + 1) for _ in range(2 * l + 1)], device="cpu")

    @cached_property
    def truncated(self) -> list[tuple[int, int]]:
        """(l, m) of the kept coefficients in m-major order."""
        out = [(l, 0) for l in range(self.lmax + 1)]
        for m in range(1, self.mmax + 1):
            out += [(l, m) for l in range(m, self.lmax + 1)]
            out += [(l, -m) for l in range(m, self.lmax + 1)]
        return out

    @property
    def num_truncated(self) -> int:
        """N_M = (L+1) + 2 Σ_{m=1..M} (L−m+1)."""
        return len(self.truncated)

    @cached_property
    def truncated_index(self) -> torch.Tensor:
        """(N_M,) full-vector index of each kept coefficient."""
        return torch.tensor([sh_index(l, m) for l, m in self.truncated], device="cpu")

    @cached_property
    def truncated_degree(self) -> torch.Tensor:
        return torch.tensor([l for l, _ in self.truncated], device="cpu")

    def m_slices(self) -> list[tuple[int, slice, slice | None]]:
        """[(m, slice of +m rows, slice of −m rows)] in the truncated order (m = 0 has no −m)."""
        out = [(0, slice(0, self.lmax + 1), None)]
        start = self.lmax + 1
        for m in range(1, self.mmax + 1):
            n = self.lmax - m + 1
            out.append((m, slice(start, start + n), slice(start + n, start + 2 * n)))
            start += 2 * n
        return out

    @cached_property
    def rescale(self) -> torch.Tensor:
        """(N_M,) c_l = √((2l+1)/(2M+1)) for l > M, else 1: variance lost to truncation."""
        M = self.mmax
        return torch.tensor([math.sqrt((2 * l + 1) / (2 * M + 1)) if l > M else 1.0 for l, _ in self.truncated],
                            dtype=torch.float64, device="cpu")


def wigner_from_harmonics(l: int, rotation: torch.Tensor) -> torch.Tensor:
    """D^l(R) (float64) by least squares on Y_l(R r) = D^l(R) Y_l(r) at random points.

    Exact to ~1e-15 because the real harmonics are polynomials that e3nn evaluates in float64
    (e3nn's own `wigner_D` goes through float32 constants: ~1e-7 errors).
    """
    with torch.device("cpu"):  # constants: real CPU tensors even inside a `meta` device context
        from e3nn import o3

        g = torch.Generator().manual_seed(0)
        points = torch.randn(4 * (2 * l + 1) + 8, 3, generator=g, dtype=torch.float64)
        R = rotation.to(device="cpu", dtype=torch.float64)
        A = o3.spherical_harmonics(l, points, normalize=True, normalization="component")
        B = o3.spherical_harmonics(l, points @ R.T, normalize=True, normalization="component")
        return torch.linalg.lstsq(A, B).solution.T.contiguous()


@lru_cache(maxsize=None)
def _swap_xy(l: int) -> torch.Tensor:
    """J_l: D^l of the π-rotation about (x̂+ŷ)/√2 (swaps x and y, flips z), float64."""
    R = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]], dtype=torch.float64, device="cpu")
    return wigner_from_harmonics(l, R)


def rotation_y_blocks(l: int, angle: torch.Tensor) -> torch.Tensor:
    """𝒴_l(θ) = D^l(Y(θ)) for a batch of angles: (E, 2l+1, 2l+1)."""
    m = torch.arange(-l, l + 1, device=angle.device, dtype=angle.dtype)
    phase = angle[:, None] * m  # (E, 2l+1)
    out = torch.diag_embed(torch.cos(phase))
    # entry (m, −m) = −sin(mθ): row index l+m, column l−m
    anti = torch.diag_embed(-torch.sin(phase)).flip(-1)
    return out + anti


def edge_angles(unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """e3nn angles (α, β) of unit vectors, r̂ = Y(α) X(β) ŷ; pole-safe β via atan2."""
    x, y, z = unit.unbind(-1)
    alpha = torch.atan2(x, z)
    beta = torch.atan2(torch.sqrt(x * x + z * z), y)
    return alpha, beta


def wigner_blocks(lmax: int, alpha: torch.Tensor, beta: torch.Tensor) -> list[torch.Tensor]:
    """[D^l(X(−β) Y(−α))] for l = 0..lmax, each (E, 2l+1, 2l+1), in the angles' dtype."""
    blocks = []
    for l in range(lmax + 1):
        J = _swap_xy(l).to(device=alpha.device, dtype=alpha.dtype)
        blocks.append(J @ rotation_y_blocks(l, -beta) @ J @ rotation_y_blocks(l, -alpha))
    return blocks


class EdgeRotation:
    """Per-edge rotations into and out of the m-truncated edge frame, built once per forward.

    to_edge:   (E, N_M, (L+1)²)  x̃ = P_M D x
    from_edge: (E, (L+1)², N_M)  y = Dᵀ P_Mᵀ S_M ỹ   (S_M: the c_l rescale)
    Detached from autograd (the heads are direct, nothing differentiates through the frame).
    """

    def __init__(self, edge_vec: torch.Tensor, layout: Layout) -> None:
        unit = full_precision(edge_vec.detach())
        with torch.no_grad(), torch.autocast(unit.device.type, enabled=False):
            unit = unit / unit.norm(dim=-1, keepdim=True)
            blocks = wigner_blocks(layout.lmax, *edge_angles(unit))
            # fill only the kept rows of each degree's block: (E, N_M, (L+1)²), never the full D
            to_edge = unit.new_zeros(unit.shape[0], layout.num_truncated, layout.dim)
            for l, D in enumerate(blocks):
                pos = [p for p, (deg, _) in enumerate(layout.truncated) if deg == l]
                rows = [l + m for deg, m in layout.truncated if deg == l]
                to_edge[:, pos, l * l:(l + 1) ** 2] = D[:, rows, :]
            self.to_edge = to_edge
            scale = layout.rescale.to(device=unit.device, dtype=unit.dtype)
            self.from_edge = (to_edge * scale[None, :, None]).transpose(1, 2).contiguous()
        self.layout = layout

    @staticmethod
    def _apply(D: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = full_precision(x)
        with torch.autocast(x.device.type, enabled=False):
            return torch.bmm(D.to(x.dtype), x)

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """(E, (L+1)², C) global-frame features -> (E, N_M, C) edge frame, m-truncated."""
        return self._apply(self.to_edge, x)

    def rotate_back(self, x: torch.Tensor) -> torch.Tensor:
        """(E, N_M, C) edge frame -> (E, (L+1)², C) global frame (with the c_l rescale)."""
        return self._apply(self.from_edge, x)

    def rotate_back_m0(self, x: torch.Tensor) -> torch.Tensor:
        """(E, L+1, C) m = 0 coefficients only -> (E, (L+1)², C) global frame."""
        return self._apply(self.from_edge[:, :, :self.layout.lmax + 1], x)

    def edge_m0(self, x: torch.Tensor) -> torch.Tensor:
        """(E, (L+1)², C) -> (E, L+1, C): the m = 0 edge-frame coefficients, which are invariants."""
        return self._apply(self.to_edge[:, :self.layout.lmax + 1], x)
