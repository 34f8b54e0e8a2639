"""Teacher-labelled data: prototype parents, the blow-up guard, and (with the optional `teacher`
extra) ~60 CHGNet-labelled structures across >= 10 elements, their forces checked against finite
differences of CHGNet's energy, read back through the OMat24 reader."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes

from matscale.data import prototypes, recipes, teacher
from matscale.data.parents import Parent
from matscale.errors import DataError


def _emt():
    from matscale.data.calculators import get_calculator

    return get_calculator("emt").factory()


# -- prototypes (no teacher needed) ------------------------------------------------------------
@pytest.mark.parametrize("proto,elements,natoms", [
    ("rocksalt", ["Mg", "O"], 2), ("zincblende", ["Ga", "As"], 2), ("wurtzite", ["Zn", "O"], 4),
    ("CsCl", ["Cs", "Cl"], 2), ("fluorite", ["Ca", "F"], 3), ("antifluorite", ["Li", "O"], 3),
    ("rutile", ["Ti", "O"], 6), ("perovskite", ["Sr", "Ti", "O"], 5), ("spinel", ["Mg", "Al", "O"], 14),
    ("diamond", ["Si"], 2), ("L12", ["Ni", "Al"], 4),
])
def test_prototype_cells_and_lattice_estimate(proto, elements, natoms):
    from ase.data import atomic_numbers, covalent_radii
    from ase.neighborlist import neighbor_list

    cell = prototypes._prototype(proto, elements, np.random.default_rng(0))
    assert len(cell) == natoms
    assert sorted(set(cell.get_chemical_symbols())) == sorted(set(elements))
    if proto == "spinel":  # AB2X4
        counts = [cell.get_chemical_symbols().count(e) for e in elements]
        assert counts == [2, 4, 8]
    scaled = prototypes._scaled(cell, prototypes.estimate_scale(cell))
    i, j, d = neighbor_list("ijd", scaled, 6.0)
    r = covalent_radii[[atomic_numbers[s] for s in scaled.get_chemical_symbols()]]
    ratio = [d[i == a].min() / (r[a] + r[j[i == a][np.argmin(d[i == a])]]) for a in range(len(scaled))]
    assert np.median(ratio) == pytest.approx(1.0, abs=1e-6)  # nearest neighbours at r_A + r_B
    assert min(ratio) > 0.7  # and no atom much closer


def test_parent_draws_span_the_periodic_table():
    labels, elements = set(), set()
    for i in range(300):
        atoms, reps, label = prototypes.draw_parent(np.random.default_rng([0, i, 0, 0]), teacher.TEACHER_ELEMENTS)
        n = len(atoms) * int(np.prod(reps))
        assert 1 <= n <= prototypes.SIZE_MAX
        labels.add(label)
        elements |= set(atoms.get_chemical_symbols())
    assert len(elements) >= 60 and len(labels) >= 15
    assert elements <= set(teacher.TEACHER_ELEMENTS)
    with pytest.raises(DataError, match="no parent prototype fits"):
        prototypes.draw_parent(np.random.default_rng(0), ("He",))


# -- the guard and the recipes' handling of a blow-up ------------------------------------------
class _Scripted(Calculator):
    """EMT that returns NaN energies from call `nan_after` on."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, nan_after: int):
        super().__init__()
        self.inner, self.calls, self.nan_after = _emt(), 0, nan_after

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        a = atoms.copy()
        a.calc = self.inner
        self.results = {"energy": a.get_potential_energy(), "forces": a.get_forces(), "stress": a.get_stress()}
        if self.calls > self.nan_after:
            self.results["energy"] = np.nan


def test_guard_passes_sane_labels_and_refuses_blowups():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=0)
    ref = atoms.copy()
    ref.calc = _emt()
    atoms.calc = teacher.GuardedCalculator("emt", _emt())
    assert atoms.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-10)
    np.testing.assert_allclose(atoms.get_stress(), ref.get_stress(), atol=1e-12)

    close = atoms.copy()
    close.positions[1] = close.positions[0] + [0.3, 0, 0]
    close.calc = teacher.GuardedCalculator("emt", _emt())
    with pytest.raises(recipes.LabelBlowUp, match="closer than"):
        close.get_potential_energy()
    nan = atoms.copy()
    nan.calc = teacher.GuardedCalculator("scripted", _Scripted(nan_after=0))
    with pytest.raises(recipes.LabelBlowUp, match="non-finite"):
        nan.get_forces()


def test_recipes_end_a_trajectory_at_a_blowup():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
    parent = Parent("p0", atoms, "fcc")
    calc = teacher.GuardedCalculator("scripted", _Scripted(nan_after=12))
    frames = recipes.aimd(parent, 1000.0, "nvt", "aimd-from-PBE-1000-nvt", calc, np.random.default_rng(0))
    assert 0 < len(frames) < recipes.FRAMES  # ended early, keeping the sane frames
    assert all(np.isfinite(f.energy) and np.isfinite(f.forces).all() for f in frames)
    calc = teacher.GuardedCalculator("scripted", _Scripted(nan_after=recipes.CANDIDATES // 2))
    picks = recipes.rattled(parent, 300.0, "rattled-300", calc, np.random.default_rng(0))
    assert 0 < len(picks) <= recipes.PICKS and all(np.isfinite(f.energy) for f in picks)


def test_missing_teacher_names_the_extra(monkeypatch):
    from matscale.data.calculators import get_calculator

    monkeypatch.setitem(teacher.PACKAGES, "chgnet", ("matscale_no_such_module", "chgnet", "0.4.2", "CHGNet 0.3.0"))
    with pytest.raises(DataError, match=r"matscale\[teacher\]"):
        get_calculator("chgnet")


def test_recipe_constants_of_emt_are_unchanged_by_teachers():
    from matscale.data import synth

    assert synth.recipe_constants("emt") == synth.recipe_constants()
    assert "PARENTS" not in synth.recipe_constants("emt")
    teacher_recipe = synth.recipe_constants("chgnet")
    assert teacher_recipe["PARENTS"]["SIZE_MAX"] == prototypes.SIZE_MAX and "GUARD" in teacher_recipe
    json.dumps(teacher_recipe)  # recorded in synth.json


# -- the real teacher ------------------------------------------------------------------------------
needs_chgnet = pytest.mark.skipif(not teacher.available("chgnet"),
                                  reason="optional teacher extra not installed (pip install 'matscale[teacher]')")


def _fd_forces(atoms: Atoms, calc, atom_ids, h: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Forces of `calc` on `atom_ids` and their central finite differences of the energy."""
    probe = atoms.copy()
    probe.calc = calc
    forces = probe.get_forces()[atom_ids]
    fd = np.zeros((len(atom_ids), 3))
    for n, a in enumerate(atom_ids):
        for k in range(3):
            e = []
            for sign in (1, -1):
                p = atoms.copy()
                p.positions[a, k] += sign * h
                p.calc = calc
                e.append(p.get_potential_energy())
            fd[n, k] = -(e[0] - e[1]) / (2 * h)
    return forces, fd


@needs_chgnet
@pytest.mark.slow
def test_chgnet_dataset_forces_match_finite_differences_and_read_back(tmp_path, monkeypatch):
    from matscale.data import open_split, synth
    from matscale.data.calculators import get_calculator
    from matscale.data.writer import SubsetWriter

    # short trajectories and relaxations keep the test small; the real code path otherwise
    monkeypatch.setattr(recipes, "FRAMES", 6)
    monkeypatch.setattr(recipes, "RELAX_MAX_STEPS", 7)
    monkeypatch.setattr(recipes, "CANDIDATES", 10)
    spec = get_calculator("chgnet")
    jobs = [synth.Job(0, "train", ("rattled-1000", "rattled-500", "rattled-300")),
            synth.Job(1, "train", ("rattled-1000", "rattled-500", "rattled-300")),
            synth.Job(2, "train", ("rattled-300-subsampled",)),
            synth.Job(3, "train", ("aimd-from-PBE-1000-npt",)),
            synth.Job(4, "train", ("aimd-from-PBE-3000-nvt",)),
            synth.Job(5, "train", ("rattled-relax",)),
            synth.Job(6, "val", ("rattled-1000", "rattled-300")),
            synth.Job(7, "val", ("aimd-from-PBE-1000-nvt",))]
    writers, written = {}, []
    for job, frames in synth.run_jobs_here(jobs, spec, seed=0):  # what synthesize()'s workers do
        for f in frames:
            key = (job.split, f.subset)
            if key not in writers:
                writers[key] = SubsetWriter(tmp_path / job.split / f.subset, f.subset)
            writers[key].write(f)
            written.append(f)
    for w in writers.values():
        w.close()

    train, val = open_split(tmp_path, "train"), open_split(tmp_path, "val")
    assert 45 <= len(train) + len(val) == len(written) <= 80
    assert len(set(train.subset_names)) >= 5
    per_split = {}
    for ds in (train, val):
        per_split[ds.split] = set()
        for i in range(len(ds)):
            per_split[ds.split] |= set(ds[i].get_chemical_symbols())
    elements = per_split["train"] | per_split["val"]
    assert len(elements) >= 10, sorted(elements)
    assert per_split["val"] <= per_split["train"]  # no element the training split lacks
    # labels read back exactly as written, in OMat24's conventions
    rec = train.record(0)
    first = written[0]
    np.testing.assert_allclose(rec.forces, first.forces, atol=1e-6)
    np.testing.assert_allclose(rec.stress, first.stress, atol=1e-9)
    assert rec.energy == pytest.approx(first.energy, abs=1e-6)
    assert all(np.abs(f.forces).max() <= recipes.MAX_FORCE for f in written)

    # stored forces = -dE/dr of the teacher (central differences, h = 0.01 Å; CHGNet is float32)
    calc = spec.factory()
    worst = 0.0
    for idx in (0, len(train) // 2, len(train) - 1):
        atoms = train[idx]
        stored = atoms.get_forces()
        ids = [0, len(atoms) - 1]
        forces, fd = _fd_forces(atoms, calc, ids)
        np.testing.assert_allclose(stored[ids], forces, atol=1e-4)  # same labels as recomputed
        err = np.abs(forces - fd).max()
        worst = max(worst, err)
        assert err < 0.02 + 0.02 * np.abs(forces).max(), (idx, forces, fd)
    print(f"{len(written)} structures, {len(elements)} elements; max |F - F_fd| = {worst:.2e} eV/Å "
          "over 6 atoms of 3 structures")


def test_named_teacher_dataset_resolves_without_generating(tmp_path, monkeypatch):
    """`data: omat24-teacher-v1` gets a fingerprint (hence run ids) on a clone without the dataset,
    and the CLI says how to make it when a summary is asked for."""
    import subprocess
    import sys

    from matscale.data import default, synth
    from matscale.data.fingerprint import fingerprint, synth_fingerprint

    monkeypatch.setenv("MATSCALE_TEACHER_DATA", str(tmp_path / "absent"))
    ds = default.named(default.TEACHER_NAME)
    assert default.dataset_root(default.TEACHER_NAME) == tmp_path / "absent"
    assert fingerprint(default.TEACHER_NAME) == synth_fingerprint(ds.structures, ds.seed, ds.calculator,
                                                                  recipe=synth.recipe_constants(ds.calculator))
    assert fingerprint(default.TEACHER_NAME) != fingerprint(None)
    with pytest.raises(DataError, match="unknown dataset"):
        default.named("omat24-nope")
    out = subprocess.run([sys.executable, "-m", "matscale", "data", "summary", "--dataset", default.TEACHER_NAME,
                          "--out", str(tmp_path / "s.json")], capture_output=True, text=True)
    assert out.returncode == 2 and "data ensure --dataset omat24-teacher-v1" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.skipif(not teacher.available("sevennet"),
                    reason="optional SevenNet teacher not installed (pip install 'matscale[sevennet]')")
@pytest.mark.slow
def test_sevennet_forces_and_stress_match_finite_differences():
    atoms = bulk("MgO", "rocksalt", a=4.3, cubic=True)
    atoms.rattle(0.05, seed=2)
    calc = teacher.teacher_calculator("sevennet")
    forces, fd = _fd_forces(atoms, calc, [0])
    np.testing.assert_allclose(forces, fd, atol=0.01)
    # stress = (1/V) dE/dε (ASE sign), checked on the xx component
    probe = atoms.copy()
    probe.calc = calc
    sxx = probe.get_stress()[0]
    e, eps = [], 1e-3
    for sign in (1, -1):
        p = atoms.copy()
        p.set_cell(atoms.cell[:] @ np.diag([1 + sign * eps, 1, 1]), scale_atoms=True)
        p.calc = calc
        e.append(p.get_potential_energy())
    assert sxx == pytest.approx((e[0] - e[1]) / (2 * eps) / atoms.get_volume(), abs=5e-4)


def test_val_parents_draw_only_training_elements():
    from matscale.data import synth
    from matscale.data.calculators import CALCULATORS

    spec, jobs = CALCULATORS["chgnet"], synth.plan(600)
    pool = synth.val_elements(spec, jobs, 0)
    train = {j.parent_index: synth._min_atoms(j) for j in jobs if j.split == "train"}
    assert pool == prototypes.drawn_elements(0, train, spec.elements) and 20 <= len(pool) < len(spec.elements)
    val = {j.parent_index: synth._min_atoms(j) for j in jobs if j.split == "val"}
    assert set(prototypes.drawn_elements(0, val, pool)) <= set(pool)
    assert not set(prototypes.drawn_elements(0, val, spec.elements)) <= set(pool)  # the rule matters here
    assert synth.val_elements(CALCULATORS["emt"], jobs, 0) is None
