"""MatscaleCalculator: a trained run serves energy, forces and stress to ASE (incl. MD)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from matscale import models
from matscale.calculator import MatscaleCalculator
from matscale.config import TrainConfig
from matscale.train.loop import train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, emt_structures, emt_val_structures):
    cfg = TrainConfig(arch="fcn", size="xs", epochs=2, batch_size=8, device="cpu",
                      run_root=str(tmp_path_factory.mktemp("runs")))
    return train(cfg, train_set=emt_structures[:16], val_set=emt_val_structures[:8], quiet=True).run_dir


def test_calculator_matches_the_model_and_ase_conventions(run_dir, emt_val_structures):
    atoms = emt_val_structures[3].copy()
    atoms.calc = MatscaleCalculator(run_dir)
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    ref = models.predict(atoms.calc.model, [atoms])
    assert energy == pytest.approx(float(ref["energy"][0]), rel=1e-6)
    np.testing.assert_allclose(forces, ref["forces"], rtol=1e-5, atol=1e-7)
    s = 0.5 * (ref["stress"][0] + ref["stress"][0].T)
    np.testing.assert_allclose(stress, [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]], rtol=1e-5, atol=1e-9)
    assert forces.shape == (len(atoms), 3) and stress.shape == (6,)
    # energy in eV on the scale of the data (per-element references are included)
    true = emt_val_structures[3].calc.results["energy"]
    assert abs(energy - true) / len(atoms) < 2.0


def test_short_md_run_with_the_calculator(run_dir):
    from ase.build import bulk
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase import units

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.calc = MatscaleCalculator(run_dir)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=300, friction=0.02, fixcm=False, rng=np.random.default_rng(0))
    energies = []
    dyn.attach(lambda: energies.append(atoms.get_total_energy()), interval=1)
    dyn.run(10)
    assert len(energies) == 11 and np.all(np.isfinite(energies))
    assert np.all(np.isfinite(atoms.positions))


def test_relaxation_steps_with_the_calculator(run_dir):
    from ase.build import bulk
    from ase.optimize import FIRE

    atoms = bulk("Ni", "fcc", a=3.55, cubic=True)
    atoms.rattle(0.05, seed=0)
    atoms.calc = MatscaleCalculator(run_dir, checkpoint="last")
    FIRE(atoms, logfile=None).run(fmax=1e-3, steps=5)
    assert np.all(np.isfinite(atoms.get_forces()))
