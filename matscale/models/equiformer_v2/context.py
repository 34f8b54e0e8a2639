"""Per-forward edge context shared by every block and head (built once in `model.py`)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .so3 import EdgeRotation


@dataclass
class EdgeContext:
    source: torch.Tensor  # (E,) neighbour atom j of each edge j -> i
    target: torch.Tensor  # (E,) centre atom i (messages are summed here)
    z_source: torch.Tensor  # (E,) atomic number of j
    z_target: torch.Tensor  # (E,) atomic number of i
    unit: torch.Tensor  # (E, 3) r̂_ij
    basis: torch.Tensor  # (E, B) radial basis of |r_ij|
    envelope: torch.Tensor  # (E,) smooth cutoff weight u(|r_ij|) in [0, 1]
    rotation: EdgeRotation  # Wigner-D into / out of the edge frame
    node_batch: torch.Tensor  # (N,) structure of each atom
    num_nodes: int
    num_structures: int

    def gather_pair(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K, C) node features -> (E, K, 2C) [x_source ‖ x_target] (source channels first)."""
        return torch.cat([x[self.source], x[self.target]], dim=-1)

    def scatter(self, messages: torch.Tensor) -> torch.Tensor:
        """Sum (E, …) edge messages at their targets -> (N, …)."""
        out = messages.new_zeros((self.num_nodes, *messages.shape[1:]))
        return out.index_add_(0, self.target, messages)
