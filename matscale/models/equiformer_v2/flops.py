"""Analytic matmul FLOPs of one EquiformerV2 training step, from layer shapes, E edges and N atoms.

Counts 2 FLOPs per multiply-add of every matrix product in the backbone (node embedding, the
K blocks' graph attention and feed-forward) and in the force head's graph attention — the
parts that scale with edges or grid points. Not modelled: the small invariant heads (edge
readout, energy and stress MLPs) and everything that is not a matrix product (norms,
activations, softmax, gathers and scatters). Backward costs, per product: 2× forward for
layers with weights (input and weight gradients), 1× for products with fixed matrices (the
detached Wigner-D rotations, the S² grid transforms of the FFN), 1.5× for the edge-frame
S² activation (its custom backward recomputes the forward transform: 3 products for 2).

bench/bench_peers.py compares this with `torch.utils.flop_counter.FlopCounterMode` on the
same batch: agreement to within the unmodelled heads says both counts are right.
"""
from __future__ import annotations

from torch import nn


def _mlp(seq: nn.Module, rows: int) -> int:
    return sum(2 * rows * m.in_features * m.out_features for m in seq.modules() if isinstance(m, nn.Linear))


def _so3_linear(lin, rows: int) -> int:
    """SO3Linear: one (C_out × C_in) product per kept coefficient (2l+1 per degree l)."""
    n_deg, c_out, c_in = lin.weight.shape
    coeffs = (lin.lmax_out + 1) ** 2 - lin.lmin_out ** 2
    assert n_deg == lin.lmax_out - lin.lmin_out + 1
    return 2 * rows * coeffs * c_out * c_in


def _so2(conv, E: int) -> int:
    """SO2Convolution: the m = 0 linear on E rows, each |m| > 0 linear on 2E rows (+m and −m)."""
    total = 2 * E * conv.m0.in_features * conv.m0.out_features
    return total + sum(2 * (2 * E) * lin.in_features * lin.out_features for lin in conv.m_linears)


def attention_flops(attn, E: int, N: int) -> dict[str, int]:
    """(forward, backward) matmul FLOPs of one GraphAttention."""
    layout = attn.layout
    K, NM = layout.dim, layout.num_truncated
    c2 = attn.conv1.cin
    hidden = attn.conv1.cout
    hv = attn.heads * attn.value_ch
    P = attn.act.grid.to_grid.shape[0]
    weighted = _mlp(attn.radial.mlp, E) + _so2(attn.conv1, E) + _so2(attn.conv2, E) + _so3_linear(attn.out, N)
    fixed = 2 * E * NM * K * c2 + 2 * E * K * NM * hv  # rotate in, rotate back
    act = 4 * P * NM * E * hidden  # to grid and back, per edge and hidden channel
    return {"forward": weighted + fixed + act, "backward": 2 * weighted + fixed + int(1.5 * act)}


def ffn_flops(ffn, N: int) -> dict[str, int]:
    weighted = 2 * N * ffn.scalar.in_features * ffn.scalar.out_features + _so3_linear(ffn.lin1, N) \
        + _so3_linear(ffn.lin2, N)
    hidden = ffn.lin1.weight.shape[1]
    if ffn.grid_mlp is not None:
        P, K = ffn.grid_mlp.grid.to_grid.shape
        weighted += _mlp(ffn.grid_mlp.mlp, N * P)
        fixed = 2 * (2 * P * K * N * hidden)  # to grid and back
        return {"forward": weighted + fixed, "backward": 2 * weighted + fixed}
    P, K = ffn.act.grid.to_grid.shape
    act = 4 * P * K * N * hidden
    return {"forward": weighted + act, "backward": 2 * weighted + int(1.5 * act)}


def train_step_flops(model, num_edges: int, num_atoms: int) -> dict[str, int]:
    """{"forward", "backward", "total"} analytic matmul FLOPs of a training step (module docstring)."""
    E, N = int(num_edges), int(num_atoms)
    L1 = model.layout.lmax + 1
    K = model.layout.dim
    emb = model.embedding
    weighted = _mlp(emb.radial.mlp, E)
    fixed = 2 * E * K * L1 * emb.channels  # rotate_back_m0
    fwd, bwd = weighted + fixed, 2 * weighted + fixed
    for part in [attention_flops(b.attn, E, N) for b in model.blocks] + [ffn_flops(b.ffn, N) for b in model.blocks] \
            + [attention_flops(model.force_head.attn, E, N)]:
        fwd, bwd = fwd + part["forward"], bwd + part["backward"]
    return {"forward": fwd, "backward": bwd, "total": fwd + bwd}
