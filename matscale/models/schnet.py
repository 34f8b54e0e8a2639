"""SchNet (Schütt et al. 2018) with periodic boundary conditions, conservative outputs.

Atoms start from an element embedding and exchange messages over the periodic radius
graph (`matscale.models.graph`): each interaction block is a continuous-filter convolution
whose filter W(r_ij) is a dense network on a Gaussian radial basis of the edge length,
multiplied by a smooth cosine cutoff so that the energy (and hence forces) is continuous when
an atom crosses the cutoff sphere. Energy is a sum of per-atom outputs; forces (−∂E/∂r) and
stress ((1/V) ∂E/∂ε) come from `MaterialModel`'s conservative path, so they are consistent
with the energy and rotate correctly by construction. The paper's code used no periodic
images; here the graph includes every image within the cutoff.

Sizes scale hidden channels = filters (F) and the number of interactions (T); the per-block
parameter count is ≈ 4F² + n_rbf·F.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from matscale.data.batch import Batch
from matscale.errors import ConfigError
from matscale.models import register
from matscale.models.base import MAX_Z, MaterialModel
from matscale.models.graph import edge_vectors, radius_graph


def shifted_softplus(x: torch.Tensor) -> torch.Tensor:
    """ssp(x) = softplus(x) − ln 2 (zero at the origin)."""
    return nn.functional.softplus(x) - math.log(2.0)


class ShiftedSoftplus(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shifted_softplus(x)


class GaussianRBF(nn.Module):
    """exp(−γ (r − μ_k)²) for n centres μ_k evenly spaced on [0, cutoff] Å; γ = 1/(2Δ²), Δ the spacing."""

    def __init__(self, cutoff: float, n: int) -> None:
        super().__init__()
        centers = torch.linspace(0.0, cutoff, n)
        self.register_buffer("centers", centers)
        spacing = cutoff / max(n - 1, 1)
        self.gamma = 0.5 / spacing ** 2

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        d = r[:, None] - self.centers.to(r.dtype)
        return torch.exp(-self.gamma * (d * d))  # d·d, not d**2: a cheaper double-backward graph, same values


def cosine_cutoff(r: torch.Tensor, cutoff: float) -> torch.Tensor:
    """½(cos(π r / r_c) + 1) for r < r_c, else 0: smooth decay of messages to the cutoff."""
    return torch.where(r < cutoff, 0.5 * (torch.cos(math.pi * r / cutoff) + 1.0), torch.zeros_like(r))


class Interaction(nn.Module):
    """One SchNet interaction block: h ← h + Dense(ssp(Dense(CFConv(h))))."""

    def __init__(self, hidden: int, filters: int, n_rbf: int) -> None:
        super().__init__()
        self.filter_net = nn.Sequential(nn.Linear(n_rbf, filters), ShiftedSoftplus(), nn.Linear(filters, filters))
        self.in2f = nn.Linear(hidden, filters, bias=False)
        self.f2out = nn.Sequential(nn.Linear(filters, hidden), ShiftedSoftplus(), nn.Linear(hidden, hidden))

    def forward(self, h: torch.Tensor, rbf: torch.Tensor, fcut: torch.Tensor, src: torch.Tensor,
                dst: torch.Tensor) -> torch.Tensor:
        w = self.filter_net(rbf) * fcut[:, None]  # (E, F) continuous filter
        x = self.in2f(h)
        msg = x[src] * w
        agg = msg.new_zeros(x.shape).index_add_(0, dst, msg)  # sum over neighbours j of target i
        return h + self.f2out(agg)


class SchNet(MaterialModel):
    """Periodic SchNet; returns normalised energy only (conservative = True)."""

    conservative = True

    def __init__(self, hidden: int = 64, filters: int | None = None, interactions: int = 3, n_rbf: int = 50,
                 cutoff: float = 5.0, max_neighbors: int | None = None) -> None:
        super().__init__()
        filters = filters or hidden
        if hidden < 2 or interactions < 1 or n_rbf < 2 or cutoff <= 0:
            raise ConfigError(f"invalid SchNet size: hidden={hidden}, interactions={interactions}, "
                             f"n_rbf={n_rbf}, cutoff={cutoff}")
        self.cutoff = float(cutoff)
        self.max_neighbors = max_neighbors
        self.embedding = nn.Embedding(MAX_Z, hidden)
        self.rbf = GaussianRBF(cutoff, n_rbf)
        self.interactions = nn.ModuleList(Interaction(hidden, filters, n_rbf) for _ in range(interactions))
        self.head = nn.Sequential(nn.Linear(hidden, hidden // 2), ShiftedSoftplus(), nn.Linear(hidden // 2, 1))

    def compute(self, batch: Batch) -> dict[str, torch.Tensor]:
        graph = radius_graph(batch, self.cutoff, self.max_neighbors)
        vec = edge_vectors(batch, graph)
        # safe norm: no NaN gradient for (impossible here, no self-edges) zero-length edges
        r = torch.sqrt((vec * vec).sum(-1).clamp_min(1e-12))
        rbf, fcut = self.rbf(r), cosine_cutoff(r, self.cutoff)
        src, dst = graph.edge_index
        h = self.embedding(batch.numbers)
        for block in self.interactions:
            h = block(h, rbf, fcut, src, dst)
        per_atom = self.head(h).squeeze(-1)
        energy = torch.zeros(batch.num_structures, dtype=per_atom.dtype, device=per_atom.device)
        return {"energy": energy.index_add_(0, batch.batch, per_atom)}


# non-embedding parameters N (total incl. the 119-element embedding in brackets)
SIZES = {
    "xxs": dict(hidden=8, interactions=3),  # 2.1k (3.1k): the bottom of the default study's ladder
    "xs": dict(hidden=24, interactions=3),  # 11.1k (14.0k)
    "s": dict(hidden=64, interactions=3),  # 61.6k (69.2k)
    "m": dict(hidden=128, interactions=4),  # 298k (313k)
    "l": dict(hidden=256, interactions=6),  # 1.69M (1.72M)
    "xl": dict(hidden=512, interactions=6),  # 6.59M (6.65M)
    "xxl": dict(hidden=768, interactions=8),  # 19.5M (19.6M)
}


@register("schnet", sizes=SIZES, default_size="s",
          description="SchNet with periodic radius graph; conservative forces and stress (autograd)")
def build_schnet(**kwargs) -> SchNet:
    return SchNet(**kwargs)
