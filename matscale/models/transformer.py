"""ADiT-style transformer over atoms plus three lattice tokens, packed without padding.

Tokens of one structure: its N atoms and 3 lattice tokens (one per lattice vector).
- atom token  = Embedding(Z) + MLP(Cartesian position) + MLP(sin/cos 2π·fractional) +
                sinusoidal encoding of the atom's index in its structure (summed, as in ADiT);
- lattice token k = MLP(a_k, |a_k|, cosines of its angles, volume^(1/3), one-hot k).
A pre-LN encoder (self-attention restricted to each structure's tokens, GELU feed-forward)
follows, then two-layer SiLU heads: energy = Σ_atoms head(h_atom), forces = head(h_atom) per
atom (direct), stress = head([mean_atoms h, h_lat1, h_lat2, h_lat3]) → 6 Voigt components.
The lattice tokens make the cell visible (the paper's code omits it, so stress would be
unlearnable). No symmetry is built in. Outputs are normalised (see `MaterialModel`).

Batches are packed: all tokens live in one (T, d) tensor and attention runs per structure
through `matscale.models.packing` (runs of equal-length structures, no padding, by default), never padding
every structure to the largest in the batch.

Parameter counts: the element embedding is the only table excluded from the non-embedding
count N; the sinusoidal index encoding has no parameters; the position and lattice MLPs count.
"""
from __future__ import annotations

import torch
from torch import nn

from matscale.data.batch import Batch
from matscale.models import register
from matscale.models.base import MAX_Z, MaterialModel
from matscale.models.features import (LENGTH_UNIT, NUM_LATTICE_VECTOR_FEATURES, NUM_PERIODIC_FEATURES,
                                      fractional_coordinates, index_in_structure, lattice_vector_features,
                                      periodic_features, sinusoidal_encoding)
from matscale.models.heads import TwoLayerMLP, mean_per_structure, sum_per_structure, symmetric_from_voigt
from matscale.models.packing import packed_attention, plan

NUM_LATTICE_TOKENS = 3


class EncoderLayer(nn.Module):
    """Pre-LN block: x + Attn(LN x), then x + FFN(LN x); same parameters as
    `nn.TransformerEncoderLayer(d, heads, ff_mult·d, norm_first=True)`."""

    def __init__(self, d_model: int, num_heads: int, ff_mult: int = 4) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_mult * d_model), nn.GELU(), nn.Linear(ff_mult * d_model, d_model))

    def forward(self, x: torch.Tensor, packing, in_layout: bool = False) -> torch.Tensor:
        """x (T, d) in original token order, or in `packing.enter` order when `in_layout`."""
        T, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(T, 3, self.num_heads, d // self.num_heads)
        x = x + self.out(packed_attention(qkv, packing, in_layout).reshape(T, d))
        return x + self.ff(self.norm2(x))


class Transformer(MaterialModel):
    def __init__(self, d_model: int = 64, num_layers: int = 2, num_heads: int = 4, ff_mult: int = 4,
                 packing: str = "exact", bucket_ratio: float = 1.5) -> None:
        super().__init__()
        d = d_model
        self.d_model, self.packing, self.bucket_ratio = d, packing, bucket_ratio
        self.element = nn.Embedding(MAX_Z, d)
        self.cartesian = TwoLayerMLP(3, d, d)
        self.fractional = TwoLayerMLP(NUM_PERIODIC_FEATURES, d, d)
        self.lattice = TwoLayerMLP(NUM_LATTICE_VECTOR_FEATURES, d, d)
        self.layers = nn.ModuleList(EncoderLayer(d, num_heads, ff_mult) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d)
        self.energy_head = TwoLayerMLP(d, d, 1)
        self.force_head = TwoLayerMLP(d, d, 3)
        self.stress_head = TwoLayerMLP((1 + NUM_LATTICE_TOKENS) * d, d, 6)

    def tokens(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(ΣN + 3B, d) input tokens (atoms first, then lattice tokens) and their structure ids."""
        B = batch.num_structures
        dtype = batch.positions.dtype
        frac = fractional_coordinates(batch)
        atoms = (self.element(batch.numbers) + self.cartesian(batch.positions / LENGTH_UNIT)
                 + self.fractional(periodic_features(frac))
                 + sinusoidal_encoding(index_in_structure(batch), self.d_model).to(dtype))
        lattice = self.lattice(lattice_vector_features(batch.cell)).reshape(B * NUM_LATTICE_TOKENS, self.d_model)
        lattice_ids = torch.arange(B, device=batch.batch.device).repeat_interleave(NUM_LATTICE_TOKENS)
        return torch.cat([atoms, lattice]), torch.cat([batch.batch, lattice_ids])

    def compute(self, batch: Batch) -> dict[str, torch.Tensor]:
        B, N = batch.num_structures, batch.num_atoms
        x, sequence = self.tokens(batch)
        packing = plan(sequence, B, self.packing, self.bucket_ratio)
        x = packing.enter(x)  # one permutation for all layers ("exact" mode; identity otherwise)
        for layer in self.layers:
            x = layer(x, packing, in_layout=True)
        x = packing.leave(self.norm(x))
        atoms, lattice = x[:N], x[N:].reshape(B, NUM_LATTICE_TOKENS * self.d_model)
        # heads may run in bf16 under autocast; sum and return in the batch's precision (the
        # base adds reference energies of hundreds of eV, which bf16 cannot resolve)
        dtype = batch.positions.dtype
        energy = sum_per_structure(self.energy_head(atoms).squeeze(-1).to(dtype), batch.batch, B)
        pooled = torch.cat([mean_per_structure(atoms, batch.batch, batch.natoms), lattice], dim=-1)
        return {
            "energy": energy,
            "forces": self.force_head(atoms).to(dtype),
            "stress": symmetric_from_voigt(self.stress_head(pooled).to(dtype)),
        }


# d_model / layers / heads per size: ~1e4 … ~1e7 parameters (xxl ~5e7 for GPUs)
SIZES = {
    "xs": dict(d_model=16, num_layers=1, num_heads=2),
    "s": dict(d_model=32, num_layers=2, num_heads=4),
    "m": dict(d_model=64, num_layers=4, num_heads=4),
    "l": dict(d_model=128, num_layers=6, num_heads=8),
    "xl": dict(d_model=320, num_layers=8, num_heads=8),
    "xxl": dict(d_model=512, num_layers=16, num_heads=16),
}

register("transformer", sizes=SIZES, default_size="s",
         description="ADiT-style packed transformer: atoms + 3 lattice tokens, pre-LN, direct heads")(Transformer)
