"""An ASE calculator serving a trained matscale model: relax structures or run MD with it.

    from matscale.calculator import MatscaleCalculator
    atoms.calc = MatscaleCalculator("runs/<run_id>")      # best checkpoint, CPU
    atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Units are ASE's: energy eV, forces eV/Å, stress eV/Å³ as Voigt-6 (xx, yy, zz, yz, xz, xy)
with ASE's sign convention (the models are trained on that convention). Direct-force models
(FCN, transformer) are not conservative: their forces are not exactly −∇E, so NVE energy is
not conserved exactly; use a thermostat or a conservative model for long MD.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from matscale.data.batch import collate


class MatscaleCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, run_dir: str | Path, checkpoint: str = "best", device: str = "cpu",
                 dtype: torch.dtype = torch.float32, **kwargs) -> None:
        super().__init__(**kwargs)
        from matscale.train.checkpoint import load_model

        self.run_dir = Path(run_dir)
        self.model, self.config, _ = load_model(self.run_dir, checkpoint, device)
        self.device, self.dtype = torch.device(device), dtype
        self.model.to(dtype=dtype)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        batch = collate([self.atoms], labels=False, dtype=self.dtype).to(self.device)
        with torch.set_grad_enabled(bool(getattr(self.model, "conservative", False))):
            out = self.model(batch)
        energy = float(out["energy"].detach().double().sum())
        forces = out["forces"].detach().double().cpu().numpy()
        s = out["stress"].detach().double().cpu().numpy()[0]
        s = 0.5 * (s + s.T)  # Voigt form assumes a symmetric tensor
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": forces,
            "stress": np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]),
        }
