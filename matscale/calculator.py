"""An ASE calculator serving a trained matscale model: relax structures or run MD with it.

    from matscale.calculator import MatscaleCalculator
    atoms.calc = MatscaleCalculator("runs/<run_id>")      # best checkpoint, CPU
    atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Units are ASE's: energy eV, forces eV/Å, stress eV/Å³ as Voigt-6 (xx, yy, zz, yz, xz, xy)
with ASE's sign convention (the models are trained on that convention). Direct-force models
(FCN, transformer) are not conservative: their forces are not exactly −∇E, so NVE energy is
not conserved exactly; use a thermostat or a conservative model for long MD.

Guards: a structure with elements the model never saw in training gets a warning (once per
new element set; its per-element reference energy is 0, so predictions are meaningless), a
non-periodic structure gets a warning (models are trained on periodic cells) and asking for
its stress raises `DataError` (stress needs a 3-D periodic cell).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from ase.data import chemical_symbols

from matscale.data.batch import collate
from matscale.errors import DataError


class UnseenElementWarning(UserWarning):
    """The structure holds elements absent from the model's training data."""


class MatscaleCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, run_dir: str | Path, checkpoint: str = "best", device: str = "cpu",
                 dtype: torch.dtype = torch.float32, **kwargs) -> None:
        super().__init__(**kwargs)
        from matscale.train.checkpoint import load_model

        self.run_dir = Path(run_dir)
        self.model, self.config, ckpt = load_model(self.run_dir, checkpoint, device)
        self.device, self.dtype = torch.device(device), dtype
        self.model.to(dtype=dtype)
        norm = ckpt.get("normalization") or {}
        known = norm.get("elements") or norm.get("energy_ref") or {}  # older checkpoints: elements with a reference
        self.training_elements = frozenset(int(z) for z in known)
        self._warned: set = set()

    @staticmethod
    def _periodic(atoms) -> bool:
        return bool(np.all(atoms.pbc)) and abs(atoms.cell.volume) > 1e-9

    def _check(self, atoms, properties) -> None:
        unseen = sorted(set(int(z) for z in atoms.numbers) - self.training_elements) if self.training_elements else []
        if unseen and tuple(unseen) not in self._warned:
            self._warned.add(tuple(unseen))
            names = ", ".join(chemical_symbols[z] for z in unseen)
            warnings.warn(f"{names} never appeared in the training data of {self.run_dir.name}: predictions for this "
                          "structure are extrapolations without a reference energy; do not trust them",
                          UnseenElementWarning, stacklevel=3)
        periodic = self._periodic(atoms)
        if not periodic and "stress" in properties:
            raise DataError(f"stress is undefined for a non-periodic structure (pbc={np.asarray(atoms.pbc).tolist()}, "
                            f"cell volume {abs(atoms.cell.volume):.3g} Å³); set a 3-D periodic cell or do not ask "
                            "for stress (e.g. no cell filter in relaxations)")
        if not periodic and "nonperiodic" not in self._warned:
            self._warned.add("nonperiodic")
            warnings.warn(f"{self.run_dir.name} was trained on periodic cells; predictions for a non-periodic "
                          "structure are extrapolations", UserWarning, stacklevel=3)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self._check(self.atoms, properties)
        batch = collate([self.atoms], labels=False, dtype=self.dtype).to(self.device)
        with torch.set_grad_enabled(bool(getattr(self.model, "conservative", False))):
            out = self.model(batch)
        energy = float(out["energy"].detach().double().sum())
        forces = out["forces"].detach().double().cpu().numpy()
        s = out["stress"].detach().double().cpu().numpy()[0]
        s = 0.5 * (s + s.T)  # Voigt form assumes a symmetric tensor
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
        if self._periodic(self.atoms):  # never cache a stress for a non-periodic cell: get_stress must raise
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
