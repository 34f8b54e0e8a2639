"""What every matscale model shares: output units, normalisation, conservative derivatives.

A model maps a `Batch` to energy (B,) eV, forces (ΣN, 3) eV/Å and stress (B, 3, 3) eV/Å³.
Subclasses implement `compute(batch)` in *normalised* units:
  energy_n  (B,)      with E = energy_scale * energy_n + Σ_atoms energy_ref[Z]
  forces_n  (ΣN, 3)   with F = force_scale * forces_n        (direct models only)
  stress_n  (B, 3, 3) with σ = stress_scale * stress_n       (direct models only)
Conservative models (`conservative = True`) return only `energy`; forces are −∂E/∂r and
stress is (1/V) ∂E/∂ε from a symmetric strain ε applied to positions and cell, so the three
outputs are consistent by construction. The training loop fits the normalisation buffers
from training data (`set_normalization`) before training; they are saved with the weights.
"""
from __future__ import annotations

import torch
from torch import nn

from matscale.data.batch import Batch

MAX_Z = 119  # atomic numbers 0..118


class MaterialModel(nn.Module):
    conservative: bool = False
    arch: str = ""
    size: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("energy_ref", torch.zeros(MAX_Z))  # eV per atom of element Z
        self.register_buffer("energy_scale", torch.ones(()))  # eV
        self.register_buffer("force_scale", torch.ones(()))  # eV/Å
        self.register_buffer("stress_scale", torch.ones(()))  # eV/Å³

    # -- to implement -------------------------------------------------------------------
    def compute(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def embedding_parameters(self) -> list[nn.Parameter]:
        """Parameters that are lookup tables (element embeddings): excluded from N."""
        return [p for m in self.modules() if isinstance(m, nn.Embedding) for p in m.parameters(recurse=False)]

    # -- shared --------------------------------------------------------------------------
    @torch.no_grad()
    def set_normalization(self, energy_ref, energy_scale: float, force_scale: float, stress_scale: float) -> None:
        """energy_ref: (MAX_Z,) eV/atom per element; scales: typical residual magnitudes."""
        self.energy_ref.copy_(torch.as_tensor(energy_ref, dtype=self.energy_ref.dtype))
        self.energy_scale.fill_(float(energy_scale))
        self.force_scale.fill_(float(force_scale))
        self.stress_scale.fill_(float(stress_scale))

    def reference_energy(self, batch: Batch) -> torch.Tensor:
        """Σ_atoms energy_ref[Z] per structure, eV."""
        per_atom = self.energy_ref[batch.numbers]
        return torch.zeros(batch.num_structures, dtype=per_atom.dtype, device=per_atom.device).index_add_(0, batch.batch, per_atom)

    def _total_energy(self, energy_n: torch.Tensor, batch: Batch) -> torch.Tensor:
        """eV; never below the batch's precision (bf16 would round 100 eV totals to ~0.5 eV)."""
        dtype = torch.promote_types(energy_n.dtype, batch.positions.dtype)
        return self.energy_scale * energy_n.to(dtype) + self.reference_energy(batch).to(dtype)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.conservative:
            return self._conservative(batch)
        out = self.compute(batch)
        return {
            "energy": self._total_energy(out["energy"], batch),
            "forces": self.force_scale * out["forces"],
            "stress": self.stress_scale * out["stress"],
        }

    def _conservative(self, batch: Batch) -> dict[str, torch.Tensor]:
        # Gradients are needed even when the caller runs under torch.no_grad() (validation);
        # then the outputs are returned detached.
        outer_grad = torch.is_grad_enabled()
        with torch.enable_grad():
            B = batch.num_structures
            strain = torch.zeros(B, 3, 3, dtype=batch.positions.dtype, device=batch.positions.device,
                                 requires_grad=True)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            positions = batch.positions.detach().requires_grad_(True)
            cell = batch.cell.detach()
            deformed = Batch(
                numbers=batch.numbers,
                positions=positions + torch.einsum("ni,nij->nj", positions, sym[batch.batch]),
                cell=cell + torch.einsum("bki,bij->bkj", cell, sym),
                pbc=batch.pbc, natoms=batch.natoms, batch=batch.batch, sid=batch.sid,
            )
            energy_n = self.compute(deformed)["energy"]
            energy = self._total_energy(energy_n, batch)
            create_graph = self.training and outer_grad
            d_pos, d_strain = torch.autograd.grad(energy.sum(), [positions, strain], create_graph=create_graph)
        volume = torch.linalg.det(cell).abs()
        # stress is undefined without a cell (volume 0): report 0 there instead of inf/NaN
        inv_volume = torch.where(volume > 0, 1.0 / volume.clamp_min(1e-30), torch.zeros_like(volume))
        out = {"energy": energy, "forces": -d_pos, "stress": d_strain * inv_volume[:, None, None]}
        return out if outer_grad else {k: v.detach() for k, v in out.items()}
