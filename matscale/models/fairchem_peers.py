"""fairchem-core 2.24 peers (eSEN, EScAIP) built from scratch behind thin adapters.

Both are fairchem's own modules, randomly initialised (no downloaded weights), trained by
our loop with our loss. The adapters turn our `Batch` into fairchem's input type and map
their outputs to `MaterialModel`'s normalised outputs:

- **eSEN** (`esen`): UMA's backbone `eSCNMDBackbone` without mixture-of-experts, dataset
  or charge/spin conditioning that matters (charge = spin = 0), with fairchem's
  `MLP_EFS_Head` energy MLP. The graph is ours (`matscale.models.graph.radius_graph`,
  passed as `edge_index`/`cell_offsets` with `otf_graph=False`), so fairchem's
  truncation trap does not apply: by default the graph is *not* capped (max_neighbors=None)
  and the model is conservative — forces and stress come from `MaterialModel`'s strain
  derivative, exactly as fairchem's own gradient head does. `direct=True` instead uses
  fairchem's direct heads (`Linear_Force_Head`: l=1 output; `MLP_Stress_Head`: l=0 + l=2
  parts), which allows a neighbour cap.
- **EScAIP** (`escaip`): `EScAIPBackbone` + `EScAIPEnergyHead`, conservative. Its input
  (`GraphAttentionData`: a neighbour-major padded layout, self in slot 0) is built from our
  radius graph with fairchem's own feature functions, instead of fairchem's
  `biknn_radius_graph`: that one is O(N²·images) per structure, truncates to knn_k
  neighbours (a discontinuous energy), and with hard kNN its in-place `masked_fill_` on an
  `amax` output breaks autograd, so fairchem's own gradient force/stress head fails in 2.24.
  Ours equals EScAIP's hard-kNN graph for knn_k → ∞ (envelope on r/cutoff only). fairchem's
  EScAIP has no direct stress head, so a direct variant could not learn our stress loss.

`import fairchem.core` costs ~10–20 s, so fairchem is imported only inside the builders.
"""
from __future__ import annotations

import torch

from matscale.data.batch import Batch
from matscale.errors import ConfigError
from matscale.models import register
from matscale.models.base import MAX_Z, MaterialModel
from matscale.models.graph import Graph, edge_vectors, radius_graph
from matscale.models.quiet_import import import_fairchem


def _atomic_data(batch: Batch, graph: Graph):
    """A batched fairchem `AtomicData` with our graph, sharing our tensors so gradients flow."""
    import_fairchem()
    from fairchem.core.datasets.atomic_data import AtomicData

    B, n, device = batch.num_structures, batch.num_atoms, batch.positions.device
    zeros_b = torch.zeros(B, dtype=torch.long, device=device)
    zeros_n = torch.zeros(n, dtype=torch.long, device=device)
    return AtomicData(
        pos=batch.positions, atomic_numbers=batch.numbers, cell=batch.cell, pbc=batch.pbc, natoms=batch.natoms,
        edge_index=graph.edge_index, cell_offsets=graph.shift.to(batch.positions.dtype),
        nedges=torch.bincount(graph.edge_batch, minlength=B),
        charge=zeros_b, spin=zeros_b, fixed=zeros_n, tags=zeros_n, batch=batch.batch,
        sid=list(batch.sid) if len(batch.sid) == B else [str(i) for i in range(B)],
    )


class ESEN(MaterialModel):
    """eSEN (fairchem `eSCNMDBackbone` + heads) on our periodic radius graph."""

    conservative = True

    def __init__(self, sphere_channels: int = 16, lmax: int = 2, mmax: int | None = None, num_layers: int = 2,
                 hidden_channels: int | None = None, edge_channels: int | None = None,
                 num_distance_basis: int = 32, cutoff: float = 5.0, max_neighbors: int | None = None,
                 direct: bool = False) -> None:
        super().__init__()
        import_fairchem()
        from fairchem.core.models.uma.escn_md import (
            Linear_Force_Head, MLP_EFS_Head, MLP_Stress_Head, eSCNMDBackbone)

        if sphere_channels % 2:
            raise ConfigError(f"esen: sphere_channels must be even (got {sphere_channels})")
        if direct and lmax < 2:
            raise ConfigError(f"esen: direct stress needs an l=2 output, so lmax >= 2 (got {lmax})")
        if max_neighbors is not None and not direct:
            raise ConfigError("esen: a max_neighbors cap truncates the graph inside the cutoff and makes the "
                              "conservative energy discontinuous; leave max_neighbors unset or use direct=True")
        self.cutoff, self.max_neighbors, self.direct = float(cutoff), max_neighbors, bool(direct)
        self.conservative = not self.direct
        self.backbone = eSCNMDBackbone(
            max_num_elements=MAX_Z, sphere_channels=sphere_channels, lmax=lmax,
            mmax=lmax if mmax is None else mmax, num_layers=num_layers,
            hidden_channels=hidden_channels or sphere_channels, edge_channels=edge_channels or sphere_channels,
            num_distance_basis=num_distance_basis, cutoff=cutoff, otf_graph=False,
            max_neighbors=max_neighbors or 10_000, use_dataset_embedding=False,
            direct_forces=self.direct, regress_forces=False, regress_stress=False,
        )
        self.energy_head = MLP_EFS_Head(self.backbone, wrap_property=False)
        if self.direct:
            self.force_head = Linear_Force_Head(self.backbone)
            self.stress_head = MLP_Stress_Head(self.backbone, reduce="mean")

    def compute(self, batch: Batch) -> dict[str, torch.Tensor]:
        data = _atomic_data(batch, radius_graph(batch, self.cutoff, self.max_neighbors))
        emb = self.backbone(data)
        dtype = batch.positions.dtype
        out = {"energy": self.energy_head(data, emb)["energy"].to(dtype)}
        if self.direct:
            out["forces"] = self.force_head(data, emb)["forces"].to(dtype)
            out["stress"] = self.stress_head(data, emb)["stress"].view(-1, 3, 3).to(dtype)
        return out


def _frequency_list(head_dim: int) -> list[int]:
    """EScAIP's per-l channel split of one attention head (fairchem default 20,10,4,10,20 for 64)."""
    weights = [20, 10, 4, 10, 20]
    out = [max(1, round(head_dim * w / sum(weights))) for w in weights]
    out[0] += head_dim - sum(out)
    if out[0] < 1:
        raise ConfigError(f"escaip: head dimension {head_dim} is too small (needs >= 5)")
    return out


class EScAIP(MaterialModel):
    """EScAIP (fairchem `EScAIPBackbone` + energy head) on our radius graph; conservative."""

    conservative = True

    def __init__(self, hidden_size: int = 32, num_layers: int = 2, num_heads: int = 2, atom_embedding_size: int = 16,
                 edge_distance_expansion_size: int = 32, edge_distance_embedding_size: int = 32,
                 node_direction_embedding_size: int = 16, node_direction_expansion_size: int = 10,
                 cutoff: float = 5.0, activation: str = "gelu") -> None:
        super().__init__()
        import_fairchem()
        from fairchem.core.models.escaip.EScAIP import EScAIPBackbone, EScAIPEnergyHead
        from fairchem.core.models.escaip.utils.smearing import GaussianSmearing

        if hidden_size % num_heads or hidden_size % 2:
            raise ConfigError(f"escaip: hidden_size {hidden_size} must be even and divisible by num_heads {num_heads}")
        self.cutoff = float(cutoff)
        self.backbone = EScAIPBackbone(
            regress_forces=False, direct_forces=False, regress_stress=False, hidden_size=hidden_size,
            num_layers=num_layers, activation=activation, use_compile=False, use_padding=False,
            use_pbc=True, max_num_elements=MAX_Z, max_atoms=0, max_batch_size=0, max_radius=cutoff,
            knn_k=0, knn_soft=False, knn_sigmoid_scale=0.2, knn_lse_scale=0.1, knn_use_low_mem=False,
            knn_pad_size=0, atten_name="math", atten_num_heads=num_heads,
            atom_embedding_size=atom_embedding_size, node_direction_embedding_size=node_direction_embedding_size,
            node_direction_expansion_size=node_direction_expansion_size,
            edge_distance_expansion_size=edge_distance_expansion_size,
            edge_distance_embedding_size=edge_distance_embedding_size,
            freequency_list=_frequency_list(hidden_size // num_heads),
        )
        # the same distance basis fairchem's preprocessing builds on every call
        self.distance_expansion = GaussianSmearing(0.0, cutoff, edge_distance_expansion_size, basis_width_scalar=2.0)
        self.energy_head = EScAIPEnergyHead(self.backbone)

    def graph_attention_data(self, batch: Batch):
        """fairchem's `GraphAttentionData` (neighbour-major padded layout) from our radius graph.

        Node i's row holds itself in slot 0 (zero displacement: EScAIP reads node features
        from that slot) and then every neighbour j within the cutoff, r_ij = x_j + S·cell − x_i.
        The log-space envelope −x²/(1−x²), x = r/cutoff, masks attention smoothly to the cutoff.
        """
        from fairchem.core.models.escaip.custom_types import GraphAttentionData
        from fairchem.core.models.escaip.utils.graph_utils import (
            get_attn_mask_env, get_compact_frequency_vectors, get_node_direction_expansion_neighbor)
        from fairchem.core.models.escaip.utils.radius_graph import envelope_fn, safe_norm, safe_normalize

        gcfg, ncfg = self.backbone.gnn_cfg, self.backbone.molecular_graph_cfg
        graph = radius_graph(batch, self.cutoff)
        vec = edge_vectors(batch, graph)
        src, dst = graph.edge_index
        n, device = batch.num_atoms, batch.positions.device
        order = torch.argsort(dst, stable=True)
        src, dst, vec = src[order], dst[order], vec[order]
        counts = torch.bincount(dst, minlength=n)
        slot = torch.arange(len(dst), device=device) - (torch.cumsum(counts, 0) - counts)[dst] + 1
        width = int(counts.max()) + 1 if len(dst) else 1
        atoms = torch.arange(n, device=device)
        rows, cols = torch.cat([atoms, dst]), torch.cat([torch.zeros_like(atoms), slot])
        disp = vec.new_zeros(n, width, 3).index_put((dst, slot), vec)
        neighbor_list = torch.zeros(n, width, dtype=torch.long, device=device).index_put(
            (rows, cols), torch.cat([atoms, src]))
        x = torch.cat([vec.new_zeros(n), safe_norm(vec) / self.cutoff])
        env = torch.full((n, width), torch.inf, dtype=vec.dtype, device=device).index_put((rows, cols), x)
        neighbor_mask = env != torch.inf
        direction, distance = safe_normalize(disp), safe_norm(disp)
        freq = gcfg.freequency_list
        return GraphAttentionData(
            atomic_numbers=batch.numbers,
            node_direction_expansion=get_node_direction_expansion_neighbor(
                direction, neighbor_mask, lmax=gcfg.node_direction_expansion_size - 1),
            edge_distance_expansion=self.distance_expansion(distance.flatten()).view(n, width, -1),
            edge_direction=direction,
            attn_mask=get_attn_mask_env(envelope_fn(env, ncfg.use_envelope), gcfg.atten_num_heads),
            angle_embedding=None,
            frequency_vectors=get_compact_frequency_vectors(direction, len(freq) - 1, freq),
            neighbor_list=neighbor_list,
            neighbor_mask=neighbor_mask,
            node_batch=batch.batch,
            node_padding_mask=torch.ones(n, dtype=torch.bool, device=device),
            graph_padding_mask=torch.ones(batch.num_structures, dtype=torch.bool, device=device),
        )

    def compute(self, batch: Batch) -> dict[str, torch.Tensor]:
        emb = self.backbone.compiled_forward(self.graph_attention_data(batch))
        energy = self.energy_head(None, emb)["energy"]
        return {"energy": energy.to(batch.positions.dtype)}


# non-embedding parameters N (total in brackets); hidden = edge channels = sphere channels
ESEN_SIZES = {
    "xs": dict(sphere_channels=8, lmax=1, num_layers=1, num_distance_basis=16),  # 3.3k (6.2k)
    "s": dict(sphere_channels=16, lmax=2, num_layers=2, num_distance_basis=32),  # 50k (56k)
    "m": dict(sphere_channels=32, lmax=2, num_layers=3, num_distance_basis=64),  # 290k (301k)
    "l": dict(sphere_channels=64, lmax=2, num_layers=4, num_distance_basis=64),  # 1.50M (1.52M)
    "xl": dict(sphere_channels=128, lmax=2, num_layers=4, num_distance_basis=128),  # 5.97M (6.01M)
    # eSEN-30M-OMat-like width and lmax (fewer layers): GPU territory
    "xxl": dict(sphere_channels=128, lmax=4, mmax=2, num_layers=8, num_distance_basis=512),  # 39.5M (39.6M)
}

# non-embedding parameters N (total in brackets)
ESCAIP_SIZES = {
    "xs": dict(hidden_size=16, num_layers=1, num_heads=2, atom_embedding_size=8, edge_distance_expansion_size=16,
               edge_distance_embedding_size=16, node_direction_embedding_size=8),  # 11.8k (15.6k)
    "s": dict(hidden_size=32, num_layers=2, num_heads=2, atom_embedding_size=16, edge_distance_expansion_size=32,
              edge_distance_embedding_size=32, node_direction_embedding_size=16),  # 74k (85k)
    "m": dict(hidden_size=64, num_layers=3, num_heads=4, atom_embedding_size=32, edge_distance_expansion_size=64,
              edge_distance_embedding_size=64, node_direction_embedding_size=32),  # 402k (432k)
    "l": dict(hidden_size=128, num_layers=4, num_heads=4, atom_embedding_size=64, edge_distance_expansion_size=128,
              edge_distance_embedding_size=128, node_direction_embedding_size=64),  # 2.04M (2.11M)
    "xl": dict(hidden_size=256, num_layers=6, num_heads=4, atom_embedding_size=128, edge_distance_expansion_size=256,
               edge_distance_embedding_size=256, node_direction_embedding_size=64),  # 11.4M (11.6M)
    "xxl": dict(hidden_size=384, num_layers=8, num_heads=6, atom_embedding_size=128, edge_distance_expansion_size=512,
                edge_distance_embedding_size=512, node_direction_embedding_size=64),  # 34.3M (34.6M)
}


@register("esen", sizes=ESEN_SIZES, default_size="s",
          description="eSEN (fairchem-core eSCNMDBackbone, UMA without MoE), conservative; from scratch")
def build_esen(**kwargs) -> ESEN:
    return ESEN(**kwargs)


@register("escaip", sizes=ESCAIP_SIZES, default_size="s",
          description="EScAIP (fairchem-core), conservative forces/stress via strain derivative; from scratch")
def build_escaip(**kwargs) -> EScAIP:
    return EScAIP(**kwargs)
