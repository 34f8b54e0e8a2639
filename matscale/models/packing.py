"""Attention over many sequences of different lengths packed into one token tensor.

The transformer keeps all tokens of a batch in one (T, d) tensor (no padding), so every
linear layer costs exactly ΣT rows. Only attention needs sequences; `Packing` says which
tokens form each sequence and how to run attention without mixing sequences:

- "exact" (default): tokens are put once per forward into a layout sorted by sequence length
  (`Packing.enter`, undone by `Packing.leave` after the last layer); sequences of equal
  length are then adjacent, so each run of equal lengths is a contiguous (G·L) slice viewed
  as (G, L) — one unmasked `scaled_dot_product_attention` per distinct length, with no
  padding, no mask and no gather/scatter inside the layers (outputs are concatenated in
  layout order). Attention work is exactly Σ len².
- "bucket": sequences are sorted by length and cut into groups whose lengths differ by at
  most `bucket_ratio`; each group is padded to its own maximum (gathered from the packed
  tensor), runs one `scaled_dot_product_attention` with a key-padding mask, and the valid
  rows are scattered back. Attention work is ≈ Σ len² instead of B · max_len².
- "block": one sequence of all T tokens with a block-diagonal boolean mask. Simple and
  exact but costs T² — slower as soon as a batch holds more than a few structures.
- "loop": one unmasked attention call per sequence (no padding, no mask, B calls).

`bench/bench_models.py` measures all of them against `nn.TransformerEncoder` padding every
structure to the batch maximum (same parameters), forward+backward, batches of 32 default-set
structures, CPU seconds (2026-12-02): exact/padded 2.42x (s), 2.13x (m), 2.06x (l); bucket
2.37x / 2.06x / 2.04x; loop and block slower. Padding wastes 62% of token rows there, so the
padded encoder's linear layers do 2.6x the packed work: at d_model 128 (l), where the linear
layers are ~80% of the packed step, no packing can gain more than ~2.6x on these batches
(3x is out of reach without changing what the batches hold); "exact" removes the gathers and
masks, i.e. most of the rest. (Earlier wall-clock figures, 1.4x-2.9x, were inflated by load.)
All modes give the same result up to float rounding (tested).
`packed_attention` accepts tokens in their original order (it enters/leaves the layout
itself) or, with `in_layout=True`, tokens already in `Packing.enter` order.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MODES = ("exact", "bucket", "block", "loop")


@dataclass
class Packing:
    mode: str
    num_tokens: int
    # bucket/loop: per group (token index (G, L), key mask (G, 1, 1, L) or None, valid rows (G·L,) or None)
    groups: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]]
    inverse: torch.Tensor | None  # token t's row in the concatenation of all groups' valid rows
    block_mask: torch.Tensor | None = None  # "block": (1, 1, T, T) True where attention is allowed
    # "exact": token t of the layout is original token order[t]; runs (start row, G, L) of equal lengths
    order: torch.Tensor | None = None
    order_inverse: torch.Tensor | None = None
    runs: list[tuple[int, int, int]] | None = None

    def enter(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (T, ...) in original order -> this plan's layout (identity except for "exact")."""
        return x if self.order is None else x[self.order]

    def leave(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of `enter`."""
        return x if self.order is None else x[self.order_inverse]


def _group_lengths(lengths: list[int], order: list[int], ratio: float) -> list[list[int]]:
    """Consecutive runs of `order` (sorted by length) with max length ≤ ratio × min length."""
    groups: list[list[int]] = []
    for s in order:
        if groups and lengths[s] <= ratio * lengths[groups[-1][0]]:
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


def plan(sequence: torch.Tensor, num_sequences: int, mode: str = "bucket", bucket_ratio: float = 1.5) -> Packing:
    """Plan attention for tokens whose sequence ids are `sequence` (T,), each id < num_sequences.

    Every sequence must hold at least one token. Tokens of one sequence need not be
    contiguous; their order within a sequence is their order in `sequence`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown packing mode {mode!r}; choose one of {MODES}")
    device = sequence.device
    T = int(sequence.shape[0])
    if mode == "block":
        mask = (sequence.unsqueeze(0) == sequence.unsqueeze(1)).view(1, 1, T, T)
        return Packing(mode, T, [], None, mask)
    if mode == "exact":
        return _plan_exact(sequence, num_sequences)
    order = torch.argsort(sequence, stable=True)  # tokens grouped by sequence
    lengths_t = torch.bincount(sequence, minlength=num_sequences)
    starts_t = torch.cumsum(lengths_t, 0) - lengths_t
    lengths, starts = lengths_t.tolist(), starts_t.tolist()
    if min(lengths, default=1) < 1:
        raise ValueError("every sequence needs at least one token")
    if mode == "loop":
        seqs = [[s] for s in range(num_sequences)]
    else:
        seqs = _group_lengths(lengths, sorted(range(num_sequences), key=lengths.__getitem__), bucket_ratio)
    groups, placed = [], []
    for members in seqs:
        L = max(lengths[s] for s in members)
        lens = torch.tensor([lengths[s] for s in members], device=device)
        first = torch.tensor([starts[s] for s in members], device=device)
        offset = torch.arange(L, device=device)
        valid = offset.unsqueeze(0) < lens.unsqueeze(1)  # (G, L)
        # padded slots point at the sequence's first token; the key mask hides them
        index = order[torch.where(valid, first.unsqueeze(1) + offset, first.unsqueeze(1))]
        if bool(valid.all()):
            groups.append((index, None, None))
            placed.append(index.reshape(-1))
        else:
            flat_valid = valid.reshape(-1).nonzero().squeeze(1)
            groups.append((index, valid.view(len(members), 1, 1, L), flat_valid))
            placed.append(index.reshape(-1)[flat_valid])
    placed_t = torch.cat(placed)
    inverse = torch.empty_like(placed_t)
    inverse[placed_t] = torch.arange(T, device=device)
    return Packing(mode, T, groups, inverse)


def _plan_exact(sequence: torch.Tensor, num_sequences: int) -> Packing:
    T = int(sequence.shape[0])
    lengths_t = torch.bincount(sequence, minlength=num_sequences)
    if num_sequences and int(lengths_t.min()) < 1:
        raise ValueError("every sequence needs at least one token")
    # sort tokens by (length of their sequence, sequence id, original position): stable sorts, last key first
    by_seq = torch.argsort(sequence, stable=True)
    key = lengths_t[sequence[by_seq]]
    order = by_seq[torch.argsort(key, stable=True)]
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(T, device=sequence.device)
    lengths = sorted(lengths_t.tolist())
    runs, start, k = [], 0, 0
    while k < len(lengths):
        L, G = lengths[k], 1
        while k + G < len(lengths) and lengths[k + G] == L:
            G += 1
        runs.append((start, G, L))
        start, k = start + G * L, k + G
    return Packing("exact", T, [], None, order=order, order_inverse=inverse, runs=runs)


def _exact_attention(qkv: torch.Tensor, runs: list[tuple[int, int, int]]) -> torch.Tensor:
    H, Dh = qkv.shape[2:]
    rows = []
    # split (not slicing): its backward is one concatenation, not a zero-filled (T, ...) buffer per run
    for chunk, (_, G, L) in zip(qkv.split([G * L for _, G, L in runs]), runs):
        q, k, v = chunk.view(G, L, 3, H, Dh).permute(2, 0, 3, 1, 4)  # 3 × (G, H, L, Dh)
        out = F.scaled_dot_product_attention(q, k, v)
        rows.append(out.transpose(1, 2).reshape(G * L, H, Dh))
    return rows[0] if len(rows) == 1 else torch.cat(rows)


def packed_attention(qkv: torch.Tensor, packing: Packing, in_layout: bool = False) -> torch.Tensor:
    """Multi-head attention within sequences: qkv (T, 3, H, Dh) → (T, H, Dh).

    in_layout: qkv (and the result) are in `packing.enter` order (the transformer keeps its
    tokens so between layers); otherwise in the original token order.
    """
    if packing.mode == "exact":
        if in_layout:
            return _exact_attention(qkv, packing.runs)
        return packing.leave(_exact_attention(packing.enter(qkv), packing.runs))
    if packing.mode == "block":
        q, k, v = qkv.permute(1, 2, 0, 3).unsqueeze(1)  # 3 × (1, H, T, Dh)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=packing.block_mask)
        return out.squeeze(0).transpose(0, 1)
    rows = []
    for index, key_mask, flat_valid in packing.groups:
        G, L = index.shape
        q, k, v = qkv[index].permute(2, 0, 3, 1, 4)  # 3 × (G, H, L, Dh), one gather per group
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        out = out.transpose(1, 2).reshape(G * L, *qkv.shape[2:])
        rows.append(out if flat_valid is None else out[flat_valid])
    return torch.cat(rows)[packing.inverse]
