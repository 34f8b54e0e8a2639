"""Periodic radius graphs for graph models, built by a library neighbour list.

Edges are (source j -> target i) with vector r_ij = x_j + S·cell - x_i (Å), where S is the
integer lattice shift; messages are summed at the target. Indices are computed without
gradients (on CPU, per structure, with ASE's neighbour list); `edge_vectors` recomputes the
vectors from the batch's positions and cell so they stay differentiable (forces, stress).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase.neighborlist import primitive_neighbor_list

from matscale.data.batch import Batch


@dataclass
class Graph:
    edge_index: torch.Tensor  # (2, E) int64: [source j, target i], global atom indices
    shift: torch.Tensor  # (E, 3) lattice shifts S (float, same dtype as positions)
    edge_batch: torch.Tensor  # (E,) structure index of each edge


def _cap_neighbors(i: np.ndarray, d: np.ndarray, max_neighbors: int, tol: float = 1e-2) -> np.ndarray:
    """Mask keeping, per centre i, the max_neighbors closest edges plus any tied within tol Å²."""
    if max_neighbors is None or max_neighbors <= 0 or len(i) == 0:
        return np.ones(len(i), dtype=bool)
    order = np.lexsort((d, i))
    i_sorted, d_sorted = i[order], d[order]
    starts = np.searchsorted(i_sorted, i_sorted, side="left")
    rank = np.arange(len(i_sorted)) - starts
    keep_sorted = rank < max_neighbors
    # keep ties with the last kept neighbour so that degenerate shells stay whole
    counts = np.bincount(i_sorted, minlength=i_sorted.max() + 1)
    last = starts + np.minimum(counts[i_sorted], max_neighbors) - 1
    keep_sorted |= d_sorted ** 2 <= d_sorted[last] ** 2 + tol
    keep = np.empty_like(keep_sorted)
    keep[order] = keep_sorted
    return keep


def radius_graph(batch: Batch, cutoff: float, max_neighbors: int | None = None) -> Graph:
    """Periodic radius graph over all structures of `batch` (cutoff in Å)."""
    pos = batch.positions.detach().double().cpu().numpy()
    cells = batch.cell.detach().double().cpu().numpy()
    pbc = batch.pbc.cpu().numpy()
    ptr = batch.ptr.cpu().numpy()
    src, dst, shifts, eb = [], [], [], []
    for b in range(batch.num_structures):
        lo, hi = ptr[b], ptr[b + 1]
        i, j, d, S = primitive_neighbor_list("ijdS", pbc[b], cells[b], pos[lo:hi], cutoff, self_interaction=False)
        keep = _cap_neighbors(i, d, max_neighbors)
        src.append(j[keep] + lo)
        dst.append(i[keep] + lo)
        shifts.append(S[keep])
        eb.append(np.full(int(keep.sum()), b))
    device = batch.positions.device
    return Graph(
        edge_index=torch.from_numpy(np.stack([np.concatenate(src), np.concatenate(dst)]).astype(np.int64)).to(device),
        shift=torch.from_numpy(np.concatenate(shifts).astype(np.float64)).to(device=device, dtype=batch.positions.dtype),
        edge_batch=torch.from_numpy(np.concatenate(eb).astype(np.int64)).to(device),
    )


def edge_vectors(batch: Batch, graph: Graph) -> torch.Tensor:
    """(E, 3) differentiable edge vectors r_ij = x_j + S·cell_b - x_i in Å."""
    j, i = graph.edge_index
    offset = torch.einsum("ek,ekl->el", graph.shift, batch.cell[graph.edge_batch])
    return batch.positions[j] + offset - batch.positions[i]
