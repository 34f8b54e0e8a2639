"""Closed-form baselines: exact recovery of per-element energies, mean energy, mean stress."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from matscale.data.batch import collate
from matscale.errors import DataError
from matscale.models import build, count_parameters, predict, spec

TRUE_ENERGY = {13: -3.7, 29: -4.1, 47: -2.9, 79: -3.3}  # eV/atom, Al Cu Ag Au


def synthetic(n: int, seed: int = 0, noise: float = 0.0, elements=tuple(TRUE_ENERGY)) -> list[Atoms]:
    """Random compositions labelled E = Σ_Z n_Z e_Z (+ noise), random forces and stress."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        N = int(rng.integers(1, 30))
        numbers = rng.choice(elements, N)
        a = Atoms(numbers=numbers, positions=rng.random((N, 3)) * 5, cell=np.eye(3) * 5, pbc=True)
        energy = sum(TRUE_ENERGY[int(z)] for z in numbers) + noise * rng.standard_normal()
        stress = rng.normal(0.0, 0.01, 6)
        a.calc = SinglePointCalculator(a, energy=energy, forces=rng.normal(0, 1, (N, 3)), stress=stress)
        out.append(a)
    return out


def test_baselines_are_registered_untrainable_without_parameters():
    for arch in ("mean", "linear"):
        assert spec(arch).trainable is False and list(spec(arch).sizes) == ["base"]
        assert count_parameters(build(arch)) == (0, 0)


def test_linear_recovers_per_element_energies_exactly():
    structures = synthetic(60)
    model = build("linear").fit(structures)
    for z, e in TRUE_ENERGY.items():
        assert float(model.element_energy[z]) == pytest.approx(e, abs=1e-8)
    out = predict(model, structures)
    np.testing.assert_allclose(out["energy"], [a.get_potential_energy() for a in structures], atol=1e-4)
    assert np.all(out["forces"] == 0)


def test_fit_from_batches_equals_fit_from_atoms():
    structures = synthetic(40, seed=3, noise=0.05)
    from_atoms = build("linear").fit(structures)
    batches = [collate(structures[i:i + 7], dtype=torch.float64) for i in range(0, 40, 7)]
    from_batches = build("linear").fit(iter(batches))
    torch.testing.assert_close(from_atoms.element_energy, from_batches.element_energy, rtol=0, atol=1e-10)
    torch.testing.assert_close(from_atoms.mean_stress, from_batches.mean_stress, rtol=0, atol=1e-12)


def test_linear_beats_mean_on_composition_dependent_energies():
    train, test = synthetic(60, seed=1, noise=0.01), synthetic(30, seed=2)
    truth = np.array([a.get_potential_energy() / len(a) for a in test])
    err = {}
    for arch in ("mean", "linear"):
        out = predict(build(arch).fit(train), test)
        err[arch] = np.abs(out["energy"] / [len(a) for a in test] - truth).mean()
    assert err["linear"] < 0.01 < err["mean"]


def test_mean_baseline_predicts_mean_energy_per_atom_and_mean_stress():
    structures = synthetic(25, seed=4)
    model = build("mean").fit(structures)
    e_bar = np.mean([a.get_potential_energy() / len(a) for a in structures])
    stresses = np.stack([a.get_stress(voigt=False) for a in structures])
    out = predict(model, structures[:5])
    np.testing.assert_allclose(out["energy"], [e_bar * len(a) for a in structures[:5]], rtol=1e-6)
    np.testing.assert_allclose(out["stress"], np.broadcast_to(stresses.mean(0), (5, 3, 3)), atol=1e-8)
    assert np.all(out["forces"] == 0) and out["forces"].shape == (sum(len(a) for a in structures[:5]), 3)


def test_collinear_or_unseen_elements_fall_back_to_the_mean():
    # Cu and Au only ever appear 1:1, so only their sum is determined; Ag never appears
    rng = np.random.default_rng(0)
    structures = []
    for i in range(12):
        k = int(rng.integers(1, 6))
        numbers = [29] * k + [79] * k if i % 2 else [13] * k
        a = Atoms(numbers=numbers, positions=rng.random((len(numbers), 3)) * 4, cell=np.eye(3) * 4, pbc=True)
        energy = sum(TRUE_ENERGY[z] for z in numbers)
        a.calc = SinglePointCalculator(a, energy=energy, forces=np.zeros((len(numbers), 3)), stress=np.zeros(6))
        structures.append(a)
    model = build("linear").fit(structures)
    e = model.element_energy.numpy()
    assert np.isfinite(e).all()
    assert e[29] + e[79] == pytest.approx(-7.4, abs=1e-6)
    assert e[29] == pytest.approx(e[79], abs=1e-6)  # the undetermined split is the symmetric one
    assert e[13] == pytest.approx(-3.7, abs=1e-6)
    structure_mean = np.mean([a.get_potential_energy() / len(a) for a in structures])
    assert e[47] == pytest.approx(structure_mean, abs=1e-12)  # unseen: the mean energy per atom


def test_fitted_model_survives_a_state_dict_round_trip():
    model = build("linear").fit(synthetic(20))
    clone = build("linear")
    clone.load_state_dict(model.state_dict())
    assert clone.fitted and torch.equal(clone.element_energy, model.element_energy)


def test_bad_fit_data_gives_clear_errors():
    with pytest.raises(DataError, match="no training structures"):
        build("mean").fit([])
    unlabelled = synthetic(2)
    unlabelled[1].calc = None
    with pytest.raises(DataError, match="labelled"):
        build("linear").fit(unlabelled)
    with pytest.raises(DataError, match="Batch or ase.Atoms"):
        build("linear").fit([1, 2])
