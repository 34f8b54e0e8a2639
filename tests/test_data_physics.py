"""Stored labels are physically consistent: forces = −dE/dx and stress = (1/V) dE/dε by finite
differences of the label calculator, on structures READ BACK from the written LMDB files (so the
stored sign, units and Voigt order are what ASE and fairchem expect)."""
import numpy as np
import pytest
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from matscale.data.calculators import get_calculator
from matscale.data.reader import open_split


@pytest.mark.parametrize("subset", ["rattled-1000", "aimd-from-PBE-3000-npt", "rattled-relax"])
def test_stored_forces_and_stress_match_finite_differences(tiny_data_root, subset):
    ds = open_split(tiny_data_root, "val", subsets=[subset])
    i = int(np.argmin(ds.natoms))  # the smallest structure keeps the finite differences cheap
    stored = ds[i]
    forces, stress, energy = stored.get_forces(), stored.get_stress(), stored.get_potential_energy()
    atoms = stored.copy()
    atoms.calc = get_calculator("emt-ase").factory()  # the unmodified ASE EMT as the reference
    assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-8)
    fd_forces = calculate_numerical_forces(atoms, eps=1e-5)
    fd_stress = calculate_numerical_stress(atoms, eps=1e-6, voigt=True)
    assert np.abs(fd_forces - forces).max() < 1e-5 * max(1.0, np.abs(forces).max())
    assert np.abs(fd_stress - stress).max() < 1e-6 + 1e-4 * np.abs(stress).max()
    # Voigt order xx yy zz yz xz xy and ASE sign: straining along x changes E by V·σ_xx·ε
    eps = 1e-5
    strained = atoms.copy()
    strained.calc = atoms.calc
    strained.set_cell(atoms.cell[:] @ np.diag([1 + eps, 1, 1]), scale_atoms=True)
    de = strained.get_potential_energy() - energy
    assert de == pytest.approx(atoms.get_volume() * stress[0] * eps, rel=1e-2, abs=1e-9)
