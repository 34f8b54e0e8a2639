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

Missing labels (batch flags `has_energy` / `has_forces` / `has_stress` False): the term is
skipped for that structure (its error is 0 and it is not counted) and each mean runs over
the structures (atoms) that carry the label. Metrics report the counts (`<prefix>_n_energy`,
`_n_forces` in atoms, `_n_stress`) when some label is missing; for fully labelled data the
metric columns are unchanged.
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
# label each metric needs, and the count column reported when some structure lacks it
LABEL_OF = {"energy": "energy", "force": "forces", "force_comp": "forces",
            "stress_iso": "stress", "stress_aniso": "stress", "stress_comp": "stress"}
COUNT_LABELS = ("energy", "forces", "stress")


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


def _masks(batch: Batch) -> dict[str, torch.Tensor] | None:
    """Per-item label-present masks (energy (B,), forces (ΣN,), stress (B,)); None when fully labelled."""
    flags = (batch.has_energy, batch.has_forces, batch.has_stress)
    if any(f is None for f in flags) or all(bool(f.all()) for f in flags):
        return None
    return {"energy": batch.has_energy, "forces": batch.has_forces[batch.batch], "stress": batch.has_stress}


def errors(pred: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
    """Per-item absolute errors in physical units.

    energy (B,) eV/atom, force (ΣN,) eV/Å norm, force_comp (ΣN,) mean |component| eV/Å,
    stress_iso (B,), stress_aniso (B,) and stress_comp (B,) eV/Å³. When some label is missing
    the dict also holds `mask_energy` (B,), `mask_forces` (ΣN,), `mask_stress` (B,) (bool) and
    the missing items' errors are exactly 0 (targets are filled before subtracting, so no NaN
    reaches the gradient).
    """
    e_pred, f_pred, s_pred = (_at_least_fp32(pred[k]) for k in ("energy", "forces", "stress"))
    masks = _masks(batch)
    e_true, f_true, s_true = batch.energy.to(e_pred.dtype), batch.forces.to(f_pred.dtype), batch.stress.to(s_pred.dtype)
    if masks is not None:
        e_true = torch.where(masks["energy"], e_true, torch.zeros_like(e_true))
        f_true = torch.where(masks["forces"][:, None], f_true, torch.zeros_like(f_true))
        s_true = torch.where(masks["stress"][:, None, None], s_true, torch.zeros_like(s_true))
    natoms = batch.natoms.to(e_pred.dtype)
    d_e = (e_pred - e_true) / natoms
    d_f = f_pred - f_true
    d_s = s_pred - s_true
    iso = d_s.diagonal(dim1=-2, dim2=-1).mean(-1)
    eye = torch.eye(3, dtype=d_s.dtype, device=d_s.device)
    aniso = d_s - iso[:, None, None] * eye
    out = {
        "energy": d_e.abs(),
        "force": torch.linalg.vector_norm(d_f, dim=-1),
        "force_comp": d_f.abs().mean(-1),
        "stress_iso": iso.abs(),
        "stress_aniso": aniso.abs().mean((-2, -1)),
        "stress_comp": d_s.abs().mean((-2, -1)),
    }
    if masks is not None:
        for comp, label in LABEL_OF.items():
            out[comp] = torch.where(masks[label], out[comp], torch.zeros_like(out[comp]))
        out.update({f"mask_{k}": v for k, v in masks.items()})
    return out


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _count(component: str, n_structures, n_atoms):
    return n_atoms if PHYSICAL[component][1] == "atoms" else n_structures


def loss(pred: dict[str, torch.Tensor], batch: Batch, weights: LossWeights, scales: LossScales,
         n_structures: int | None = None, n_atoms: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(weighted normalised total, per-item errors). Counts default to this batch's.

    With missing labels each term is averaged over the items carrying its label: this batch's
    labelled count scaled by (global count / local count), which is exact in one process and
    the expected global count under DDP; a term with no labelled item contributes 0."""
    err = errors(pred, batch)
    n_structures = batch.num_structures if n_structures is None else n_structures
    n_atoms = batch.num_atoms if n_atoms is None else n_atoms
    total = err["energy"].new_zeros(())
    for comp in COMPONENTS:
        w = getattr(weights, comp)
        if w:
            count = _count(comp, n_structures, n_atoms)
            mask = err.get(f"mask_{LABEL_OF[comp]}")
            if mask is not None:
                local = batch.num_atoms if PHYSICAL[comp][1] == "atoms" else batch.num_structures
                count = float(mask.sum()) * count / max(local, 1)
                if count == 0:
                    continue
            total = total + w * err[comp].sum() / (scales.of(comp) * count)
    return total, err


def label_counts(err: dict[str, torch.Tensor], n_structures: int, n_atoms: int) -> list[int]:
    """[structures with energy, atoms with forces, structures with stress] of one `errors` dict."""
    full = {"energy": n_structures, "forces": n_atoms, "stress": n_structures}
    return [int(err[f"mask_{k}"].sum()) if f"mask_{k}" in err else full[k] for k in COUNT_LABELS]


class LossMeter:
    """Accumulates error sums over batches (and processes) and reports mean metrics."""

    def __init__(self, weights: LossWeights, scales: LossScales) -> None:
        self.weights, self.scales = weights, scales
        self.sums = torch.zeros(len(PHYSICAL), dtype=torch.float64)
        self.n_structures = 0
        self.n_atoms = 0
        self.labelled = torch.zeros(len(COUNT_LABELS), dtype=torch.float64)  # see label_counts

    def add(self, err: dict[str, torch.Tensor], n_structures: int, n_atoms: int) -> None:
        self.sums += torch.stack([err[k].detach().double().sum().cpu() for k in PHYSICAL])
        self.labelled += torch.tensor(label_counts(err, int(n_structures), int(n_atoms)), dtype=torch.float64)
        self.n_structures += int(n_structures)
        self.n_atoms += int(n_atoms)

    def all_reduce(self) -> None:
        """Sum over processes (no-op when not distributed)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            k = len(COUNT_LABELS)
            buf = torch.cat([self.sums, self.labelled,
                             torch.tensor([self.n_structures, self.n_atoms], dtype=torch.float64)])
            if dist.get_backend() == "nccl":
                buf = buf.cuda()
            dist.all_reduce(buf)
            buf = buf.cpu()
            self.sums = buf[:-2 - k].clone()
            self.labelled = buf[-2 - k:-2].clone()
            self.n_structures, self.n_atoms = int(buf[-2]), int(buf[-1])

    def state_dict(self) -> dict:
        return {"sums": self.sums.clone(), "n_structures": self.n_structures, "n_atoms": self.n_atoms,
                "labelled": self.labelled.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.sums = state["sums"].clone().to(torch.float64)
        self.n_structures, self.n_atoms = int(state["n_structures"]), int(state["n_atoms"])
        if "labelled" in state:
            self.labelled = state["labelled"].clone().to(torch.float64)
        else:  # checkpoints written before label masks: everything was labelled
            self.labelled = torch.tensor([self.n_structures, self.n_atoms, self.n_structures], dtype=torch.float64)

    @property
    def empty(self) -> bool:
        return self.n_structures == 0

    @property
    def label_counts(self) -> dict[str, int]:
        """{"energy": structures, "forces": atoms, "stress": structures} carrying each label."""
        return {k: int(v) for k, v in zip(COUNT_LABELS, self.labelled.tolist())}

    @property
    def fully_labelled(self) -> bool:
        c = self.label_counts
        return c["energy"] == c["stress"] == self.n_structures and c["forces"] == self.n_atoms

    def result(self, prefix: str) -> dict[str, float]:
        """{prefix_loss, prefix_loss_<component> (weighted, normalised), prefix_<metric>_<unit> (physical)}.

        Means run over the items carrying each label; when some label is missing the counts are
        added as prefix_n_energy / prefix_n_forces (atoms) / prefix_n_stress, and a metric with
        no labelled item is NaN (its loss term counts 0)."""
        out: dict[str, float] = {}
        phys, counts = {}, self.label_counts
        for value, (comp, (name, per)) in zip(self.sums.tolist(), PHYSICAL.items()):
            count = counts[LABEL_OF[comp]]
            phys[comp] = value / count if count else (float("nan") if not self.empty else 0.0)
        total = 0.0
        for comp in COMPONENTS:
            w = getattr(self.weights, comp)
            part = w * phys[comp] / self.scales.of(comp) if w and counts[LABEL_OF[comp]] else 0.0
            out[f"{prefix}_loss_{comp}"] = part
            total += part
        out[f"{prefix}_loss"] = total
        for comp, (name, _) in PHYSICAL.items():
            out[f"{prefix}_{name}"] = phys[comp]
        if not self.fully_labelled:
            out.update({f"{prefix}_n_{k}": v for k, v in counts.items()})
        return {k: out[k] for k in [f"{prefix}_loss"] + [k for k in out if k != f"{prefix}_loss"]}
