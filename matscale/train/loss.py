"""The OMat24 loss and its components, in normalised and physical units.

    L = w_E · MAE(E/N)/s_E + w_F · L2MAE(F)/s_F + w_iso · MAE(σ_iso)/s_σ + w_aniso · MAE(σ_aniso)/s_σ

E/N is the energy per atom (eV/atom); L2MAE(F) is the mean over atoms of the Euclidean norm of
the force error (eV/Å); σ_iso = tr(σ)/3 is the isotropic stress (eV/Å³, its error's absolute
value averaged over structures) and σ_aniso = σ − σ_iso·I the traceless deviatoric part (the
mean absolute error of its 9 Cartesian components, averaged over structures). The scales s
(per-atom energy residual RMS, force and stress component RMS, `normalization.py`) make
every term O(1) for a model that predicts nothing beyond the per-element references. The scales are the run's *loss units*: fitted on a fixed sample of
the whole training split, the same for every run on a dataset, so losses compare across runs
(see normalization.py). Default weights are the OMat24 ones (2.5, 20, 5, 5).

Means are taken over a *global* batch: `loss(..., n_structures, n_atoms)` divides sums by
the counts of the whole batch across processes, so DDP's gradient average reproduces the
single-process gradient exactly even when processes hold different numbers of atoms.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from matscale.data.batch import Batch

COMPONENTS = ("energy", "force", "stress_iso", "stress_aniso")
# physical MAE metric name (with unit) and whether it is averaged over atoms or structures
PHYSICAL = {
    "energy": ("energy_mae_eV_atom", "structures"),
    "force": ("force_l2mae_eV_A", "atoms"),
    "force_comp": ("force_mae_eV_A", "atoms"),
    "stress_iso": ("stress_iso_mae_eV_A3", "structures"),
    "stress_aniso": ("stress_aniso_mae_eV_A3", "structures"),
    "stress_comp": ("stress_mae_eV_A3", "structures"),
}


@dataclass(frozen=True)
class LossWeights:
    """Weights of the four loss terms; TrainConfig owns their defaults (`from_config`)."""
    energy: float
    force: float
    stress_iso: float
    stress_aniso: float

    @classmethod
    def from_config(cls, config) -> "LossWeights":
        return cls(config.energy_weight, config.force_weight, config.stress_iso_weight, config.stress_aniso_weight)


@dataclass(frozen=True)
class LossScales:
    """Typical magnitudes dividing each error: eV/atom, eV/Å, eV/Å³ (from the training subset)."""
    energy: float = 1.0
    force: float = 1.0
    stress: float = 1.0

    def of(self, component: str) -> float:
        return {"energy": self.energy, "force": self.force}.get(component, self.stress)

    def to_dict(self) -> dict[str, float]:
        return {"energy": float(self.energy), "force": float(self.force), "stress": float(self.stress)}

    @classmethod
    def from_dict(cls, d: dict) -> "LossScales":
        return cls(float(d["energy"]), float(d["force"]), float(d["stress"]))


def errors(pred: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
    """Per-item absolute errors in physical units.

    energy (B,) eV/atom, force (ΣN,) eV/Å norm, force_comp (ΣN,) mean |component| eV/Å,
    stress_iso (B,), stress_aniso (B,) and stress_comp (B,) eV/Å³.
    """
    e_pred, f_pred, s_pred = (_at_least_fp32(pred[k]) for k in ("energy", "forces", "stress"))
    natoms = batch.natoms.to(e_pred.dtype)
    d_e = (e_pred - batch.energy.to(e_pred.dtype)) / natoms
    d_f = f_pred - batch.forces.to(f_pred.dtype)
    d_s = s_pred - batch.stress.to(s_pred.dtype)
    iso = d_s.diagonal(dim1=-2, dim2=-1).mean(-1)
    eye = torch.eye(3, dtype=d_s.dtype, device=d_s.device)
    aniso = d_s - iso[:, None, None] * eye
    return {
        "energy": d_e.abs(),
        "force": torch.linalg.vector_norm(d_f, dim=-1),
        "force_comp": d_f.abs().mean(-1),
        "stress_iso": iso.abs(),
        "stress_aniso": aniso.abs().mean((-2, -1)),
        "stress_comp": d_s.abs().mean((-2, -1)),
    }


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _count(component: str, n_structures, n_atoms):
    return n_atoms if PHYSICAL[component][1] == "atoms" else n_structures


def loss(pred: dict[str, torch.Tensor], batch: Batch, weights: LossWeights, scales: LossScales,
         n_structures: int | None = None, n_atoms: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(weighted normalised total, per-item errors). Counts default to this batch's."""
    err = errors(pred, batch)
    n_structures = batch.num_structures if n_structures is None else n_structures
    n_atoms = batch.num_atoms if n_atoms is None else n_atoms
    total = err["energy"].new_zeros(())
    for comp in COMPONENTS:
        w = getattr(weights, comp)
        if w:
            total = total + w * err[comp].sum() / (scales.of(comp) * _count(comp, n_structures, n_atoms))
    return total, err


class LossMeter:
    """Accumulates error sums over batches (and processes) and reports mean metrics."""

    def __init__(self, weights: LossWeights, scales: LossScales) -> None:
        self.weights, self.scales = weights, scales
        self.sums = torch.zeros(len(PHYSICAL), dtype=torch.float64)
        self.n_structures = 0
        self.n_atoms = 0

    def add(self, err: dict[str, torch.Tensor], n_structures: int, n_atoms: int) -> None:
        self.sums += torch.stack([err[k].detach().double().sum().cpu() for k in PHYSICAL])
        self.n_structures += int(n_structures)
        self.n_atoms += int(n_atoms)

    def all_reduce(self) -> None:
        """Sum over processes (no-op when not distributed)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            buf = torch.cat([self.sums, torch.tensor([self.n_structures, self.n_atoms], dtype=torch.float64)])
            if dist.get_backend() == "nccl":
                buf = buf.cuda()
            dist.all_reduce(buf)
            buf = buf.cpu()
            self.sums = buf[:-2].clone()
            self.n_structures, self.n_atoms = int(buf[-2]), int(buf[-1])

    def state_dict(self) -> dict:
        return {"sums": self.sums.clone(), "n_structures": self.n_structures, "n_atoms": self.n_atoms}

    def load_state_dict(self, state: dict) -> None:
        self.sums = state["sums"].clone().to(torch.float64)
        self.n_structures, self.n_atoms = int(state["n_structures"]), int(state["n_atoms"])

    @property
    def empty(self) -> bool:
        return self.n_structures == 0

    def result(self, prefix: str) -> dict[str, float]:
        """{prefix_loss, prefix_loss_<component> (weighted, normalised), prefix_<metric>_<unit> (physical)}."""
        out: dict[str, float] = {}
        phys = {}
        for value, (comp, (name, per)) in zip(self.sums.tolist(), PHYSICAL.items()):
            count = self.n_atoms if per == "atoms" else self.n_structures
            phys[comp] = value / max(count, 1)
        total = 0.0
        for comp in COMPONENTS:
            part = getattr(self.weights, comp) * phys[comp] / self.scales.of(comp)
            out[f"{prefix}_loss_{comp}"] = part
            total += part
        out[f"{prefix}_loss"] = total
        for comp, (name, _) in PHYSICAL.items():
            out[f"{prefix}_{name}"] = phys[comp]
        return {k: out[k] for k in [f"{prefix}_loss"] + [k for k in out if k != f"{prefix}_loss"]}
