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


def test_calculator_warns_on_unseen_elements_and_refuses_stress_without_a_cell(run_dir):
    from ase.build import bulk

    from matscale.calculator import UnseenElementWarning
    from matscale.errors import DataError

    gold = bulk("Au", "fcc", a=4.08)  # the run trained on Cu/Al/Ni/Ag only
    gold.calc = MatscaleCalculator(run_dir)
    with pytest.warns(UnseenElementWarning, match="Au never appeared in the training data"):
        gold.get_potential_energy()
    known = bulk("Cu", "fcc", a=3.6)
    known.calc = gold.calc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        known.get_potential_energy()  # seen elements: no warning
    cluster = bulk("Cu", "fcc", a=3.6).repeat(2)
    cluster.pbc = False  # a cell is kept (fcn needs one) but the structure is not periodic
    cluster.calc = MatscaleCalculator(run_dir)
    with pytest.warns(UserWarning, match="trained on periodic cells"):
        assert np.isfinite(cluster.get_potential_energy())
    with pytest.raises(DataError, match="stress is undefined for a non-periodic structure"):
        cluster.get_stress()
