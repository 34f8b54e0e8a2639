# ==== training engine (matscale/train, config, runs, calculator) ====================================
import pytest as _pytest_train


def _emt_structures(n: int, seed: int = 0, elements=("Cu", "Al", "Ni", "Ag")):
    """n small labelled EMT structures (1–8 atoms, rattled and strained fcc alloys), deterministic."""
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = bulk(elements[i % len(elements)], "fcc", cubic=bool(rng.integers(2))).repeat((int(rng.integers(1, 3)), 1, 1))
        symbols = [elements[int(rng.integers(len(elements)))] if rng.random() < 0.3 else s
                   for s in a.get_chemical_symbols()]
        a.set_chemical_symbols(symbols)
        a.set_cell(a.cell[:] @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
        a.positions += 0.1 * rng.standard_normal(a.positions.shape)
        a.calc = EMT()
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        a.info.update(sid=f"emt{seed}_{i}", parent_id=f"emt{seed}_{i}", subset="rattled-300")
        out.append(a)
    return out


@_pytest_train.fixture(scope="session")
def emt_structures():
    """48 labelled EMT structures for training-engine tests (read-only: copy before changing)."""
    return _emt_structures(48, seed=0)


@_pytest_train.fixture(scope="session")
def emt_val_structures():
    return _emt_structures(16, seed=1)
# ==== end training engine ===========================================================================


# ==== first models (fcn, transformer, baselines) ====================================================
import pytest as _pytest_models


@_pytest_models.fixture(scope="session")
def mixed_emt_structures():
    """Six rattled, strained EMT alloys of 1–32 atoms (mixed sizes in one batch); read-only."""
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(0)
    out = []
    for element, rep, cubic in [("Cu", (1, 1, 1), False), ("Al", (2, 1, 1), True), ("Ni", (1, 1, 1), True),
                                ("Ag", (3, 1, 1), False), ("Au", (2, 2, 2), True), ("Pd", (2, 1, 1), False)]:
        a = bulk(element, "fcc", cubic=cubic).repeat(rep)
        a.set_chemical_symbols([s if rng.random() < 0.7 else "Cu" for s in a.get_chemical_symbols()])
        a.set_cell(a.cell[:] @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
        a.positions += 0.05 * rng.standard_normal(a.positions.shape)
        a.calc = EMT()
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        out.append(a)
    return out
# ==== end first models ==============================================================================


# ==== graph models (schnet, fairchem peers, graph, symmetry) ========================================
import pytest as _pytest_graph


def _gm_emt_structures():
    """Five rattled, strained, labelled EMT alloys of 1–8 atoms (incl. a 1-atom primitive cell)."""
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(7)
    out = []
    specs = [("Cu", 3.61, True, 2), ("Al", 4.05, False, 2), ("Ni", 3.52, True, 1), ("Ag", 4.09, False, 1),
             ("Cu", 3.61, False, 1)]
    for k, (element, a0, cubic, rep) in enumerate(specs):
        atoms = bulk(element, "fcc", a=a0, cubic=cubic).repeat((rep, 1, 1))
        if len(atoms) > 1:
            symbols = atoms.get_chemical_symbols()
            symbols[0] = "Au" if element != "Au" else "Cu"
            atoms.set_chemical_symbols(symbols)
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + 0.03 * rng.standard_normal((3, 3))), scale_atoms=True)
        atoms.positions += 0.08 * rng.standard_normal(atoms.positions.shape)
        atoms.calc = EMT()
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
        atoms.info["sid"] = f"gm{k}"
        out.append(atoms)
    return out


@_pytest_graph.fixture(scope="session")
def gm_structures():
    """Labelled EMT structures for graph-model tests (read-only: copy before changing)."""
    return _gm_emt_structures()
def _gm_overfit(model, structures, steps: int = 150, lr: float = 3e-3, seed: int = 0):
    """Plain-Adam overfit of energy/atom, forces and stress (normalised MSE); returns the loss curve."""
    import numpy as np
    import torch

    from matscale.data.batch import collate

    torch.manual_seed(seed)
    batch = collate(structures)
    e_atom = (batch.energy / batch.natoms).mean()
    ref = torch.full((119,), float(e_atom))
    resid = batch.energy - e_atom * batch.natoms
    model.set_normalization(ref, float(resid.abs().mean().clamp_min(1e-3)), float(batch.forces.std()),
                            float(batch.stress.std()))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        out = model(batch)
        loss = (((out["energy"] - batch.energy) / batch.natoms / model.energy_scale) ** 2).mean() \
            + ((out["forces"] - batch.forces) / model.force_scale).pow(2).mean() \
            + ((out["stress"] - batch.stress) / model.stress_scale).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return np.array(losses)


@_pytest_graph.fixture(scope="session")
def gm_overfit():
    return _gm_overfit


# ==== end graph models ==============================================================================


# --- data fixtures (data helper) --------------------------------------------------------------------
import pytest as _pytest_data

TINY_STRUCTURES = 300  # training structures of the tiny synthetic set (val adds ≈260: ≥1 parent per subset)


@_pytest_data.fixture(scope="session")
def tiny_data_root(tmp_path_factory):
    """A tiny synthetic OMat24-layout dataset (seed 0, ≈320 train + ≈260 val rows, all 11 subsets
    in both splits), generated once per test session (shared by pytest-xdist workers through a
    lock). Read-only: copy it before changing anything."""
    import os

    from matscale.data.default import ensure_dataset

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # one directory per session, shared by its workers
    return ensure_dataset(base / "matscale-tiny-data", TINY_STRUCTURES, seed=0, workers=2, progress=False)
# --- end data fixtures (data helper) ----------------------------------------------------------------
