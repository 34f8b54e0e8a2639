"""SO(2) convolution in the edge frame (eSCN, arXiv 2302.03655 §3; EquiformerV2 §3).

In the edge-aligned frame the edge's own harmonics are non-zero only at m = 0, so the SO(3)
tensor product with them is block-diagonal in |m|: degrees mix freely within one |m|, and
each (+m, −m) pair is multiplied like a complex number, which commutes with the planar
rotation by mθ that a roll about the edge applies to it. Cost O(L³) instead of O(L⁶).

Input (E, N_M, C_in) in `Layout.truncated` (m-major) order; optional radial gate
(E, T·C_in), T = (L+1) + Σ_{m=1..M}(L−m+1), multiplies the inputs of each |m| block (shared
by +m and −m) — the reference's "radial-dependent weights". m = 0 also emits `extra`
invariant scalars (attention logits, gates).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .so3 import Layout


def radial_size(layout: Layout) -> int:
    """T = (L+1) + Σ_{m=1..M} (L−m+1): degrees per |m| block, summed."""
    L = layout.lmax
    return (L + 1) + sum(L - m + 1 for m in range(1, layout.mmax + 1))


class SO2Convolution(nn.Module):
    def __init__(self, layout: Layout, in_channels: int, out_channels: int, extra: int = 0,
                 m0_bias: bool = True) -> None:
        super().__init__()
        self.layout, self.cin, self.cout, self.extra = layout, in_channels, out_channels, extra
        L = layout.lmax
        self.m0 = nn.Linear((L + 1) * in_channels, extra + (L + 1) * out_channels, bias=m0_bias)
        if m0_bias:
            nn.init.zeros_(self.m0.bias)
        self.m_linears = nn.ModuleList()
        for m in range(1, layout.mmax + 1):
            n = L - m + 1
            lin = nn.Linear(n * in_channels, 2 * n * out_channels, bias=False)  # [W_real; W_imag]
            with torch.no_grad():
                lin.weight.mul_(1.0 / math.sqrt(2.0))
            self.m_linears.append(lin)

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (E, N_M, C_in), gate (E, T·C_in) or None -> (y (E, N_M, C_out), extra (E, X))."""
        E = x.shape[0]
        slices = self.layout.m_slices()
        offset = 0
        outs = []
        extra = x.new_zeros(E, 0)
        for (m, plus, minus) in slices:
            n = plus.stop - plus.start
            g = None
            if gate is not None:
                g = gate[:, offset:offset + n * self.cin].reshape(E, n, self.cin)
                offset += n * self.cin
            u_p = x[:, plus] if g is None else x[:, plus] * g
            if m == 0:
                y = self.m0(u_p.reshape(E, n * self.cin))
                extra, y = y[:, :self.extra], y[:, self.extra:]
                outs.append(y.reshape(E, n, self.cout))
                continue
            u_m = x[:, minus] if g is None else x[:, minus] * g
            lin = self.m_linears[m - 1]
            both = lin(torch.cat([u_p, u_m], dim=0).reshape(2 * E, n * self.cin))  # (2E, 2·n·C_out)
            real, imag = both[:, :n * self.cout], both[:, n * self.cout:]
            y_p = real[:E] - imag[E:]
            y_m = real[E:] + imag[:E]
            outs += [y_p.reshape(E, n, self.cout), y_m.reshape(E, n, self.cout)]
        return torch.cat(outs, dim=1), extra
