"""The synthetic OMat24 generator: layout, format, sampling recipe, splits and determinism."""
import json
from pathlib import Path

import numpy as np
import pytest

from matscale.data import recipes
from matscale.data.reader import open_split, open_splits
from matscale.data.subsets import SPLITS, SUBSETS, VAL_COUNTS, spec
from matscale.data.synth import FAMILIES, plan, parents_per_subset

MAX_STRESS_EV_A3 = 80 / 160.21766208


def test_layout_has_every_subset_in_both_splits(tiny_data_root):
    root = Path(tiny_data_root)
    for split in SPLITS:
        for subset in SUBSETS:
            d = root / split / subset
            assert (d / "data.aselmdb").is_file(), d
            meta = np.load(d / "metadata.npz")
            assert list(meta.keys()) == ["natoms"] and meta["natoms"].dtype == np.int64
    info = json.loads((root / "synth.json").read_text())
    assert info["seed"] == 0 and info["calculator"] == "emt"
    for split in SPLITS:
        assert all(info["counts"][split][s] > 0 for s in SUBSETS)


def test_rows_match_the_released_format(tiny_data_root):
    import ase.db

    db = ase.db.connect(str(Path(tiny_data_root) / "train" / "rattled-300" / "data.aselmdb"), readonly=True,
                        use_lock_file=False)
    row = db.get(id=1)
    assert set(row.data) >= {"sid", "parent_id", "calc_id", "task_type"}
    assert row.data["calc_id"] == "rattled-300" and row.data["task_type"] == "Static"
    assert row.data["sid"].startswith(row.data["parent_id"] + "_") and "_rattled-300_" in row.data["sid"]
    assert row.stress.shape == (6,) and row.forces.shape == (row.natoms, 3) and all(row.pbc)
    atoms = row.toatoms()
    assert np.allclose(atoms.get_stress(), row.stress)


def test_metadata_natoms_matches_rows_and_labels_pass_the_filters(tiny_data_root):
    for split in SPLITS:
        ds = open_split(tiny_data_root, split)
        decoded = np.array([len(ds.record(i).numbers) for i in range(len(ds))])
        assert np.array_equal(ds.natoms, decoded)
        for i in range(len(ds)):
            rec = ds.record(i)
            assert np.sqrt((rec.forces**2).sum(1)).max() <= recipes.MAX_FORCE
            assert np.abs(rec.stress).max() <= MAX_STRESS_EV_A3


def test_splits_do_not_share_parents_and_sids_are_unique(tiny_data_root):
    train, val = open_splits(tiny_data_root)
    assert not set(train.parent_ids) & set(val.parent_ids)
    sids = [train.record(i).info["sid"] for i in range(len(train))] + [val.record(i).info["sid"] for i in range(len(val))]
    assert len(set(sids)) == len(sids)
    # parents.npz agrees with the parent_id stored in every row
    assert all(train.record(i).info["parent_id"] == train.parent_ids[i] for i in range(len(train)))


def test_recipe_shapes_the_subsets(tiny_data_root):
    ds = open_split(tiny_data_root, "train")
    subsets, parents = ds.subsets, ds.parent_ids
    for subset in SUBSETS:
        rows = np.flatnonzero(subsets == subset)
        per_parent = {p: int((parents[rows] == p).sum()) for p in set(parents[rows])}
        kind = spec(subset).kind
        if kind == "rattled":
            assert all(n <= recipes.PICKS for n in per_parent.values())
            assert {ds.record(int(i)).info["task_type"] for i in rows} == {"Static"}
        elif kind == "aimd":  # whole trajectories, consecutive rows, all in one split
            assert all(n <= recipes.FRAMES for n in per_parent.values()) and max(per_parent.values()) >= 40
        else:
            assert max(per_parent.values()) >= 2  # every step of a relaxation
    # aimd frames of one trajectory move continuously (2 fs steps), energies of a relaxation go down
    rows = np.flatnonzero(subsets == "aimd-from-PBE-1000-nvt")[:10]
    pos = np.array([ds.record(int(i)).positions for i in rows])
    assert 0 < np.abs(np.diff(pos, axis=0)).max() < 0.2
    rows = np.flatnonzero(subsets == "rattled-relax")
    first = parents[rows[0]]
    e = [ds.record(int(i)).energy for i in rows if parents[i] == first]
    assert e[-1] < e[0]
    # subsampled subsets use other parents than their full-size counterparts
    for t in ("300", "500", "1000"):
        full = set(parents[subsets == f"rattled-{t}"])
        sub = set(parents[subsets == f"rattled-{t}-subsampled"])
        assert full and sub and not full & sub


def test_plan_mirrors_omat24_shares_and_val_is_about_ten_percent():
    counts = parents_per_subset(20_000)
    total = sum(VAL_COUNTS.values())
    from matscale.data.synth import expected_yield

    for s in SUBSETS:
        rows = counts["train"][s] * expected_yield(s)
        assert rows == pytest.approx(20_000 * VAL_COUNTS[s] / total, rel=0.15)
        assert counts["val"][s] == max(1, round(0.1 * counts["train"][s]))
    jobs = plan(20_000)
    split_of = {}
    for j in jobs:  # a parent index never appears in two splits, subsets of a job share one family
        assert split_of.setdefault(j.parent_index, j.split) == j.split
        assert any(set(j.subsets) <= set(f) for f in FAMILIES)
    with pytest.raises(Exception, match="positive"):
        plan(0)


def test_parent_sizes_cover_one_atom_to_about_a_hundred():
    from matscale.data.calculators import EMT_METALS
    from matscale.data.parents import build_parent

    sizes, protos = [], set()
    for i in range(400):
        atoms, proto = build_parent(np.random.default_rng([0, i, 0]), EMT_METALS)
        sizes.append(len(atoms))
        protos.add(proto)
        assert set(atoms.get_chemical_symbols()) <= set(EMT_METALS) and atoms.pbc.all()
    sizes = np.array(sizes)
    assert sizes.min() == 1 and 60 <= sizes.max() <= 108
    assert 10 <= np.median(sizes) <= 24 and (sizes <= 4).mean() < 0.2
    assert {"fcc", "L12", "L10", "B2"} <= protos and any(p.endswith("-random") for p in protos)


def test_fast_emt_equals_ase_emt():
    from ase.build import bulk

    from matscale.data.calculators import get_calculator

    rng = np.random.default_rng(1)
    for rep in [(1, 1, 1), (2, 2, 1)]:
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(rep)
        atoms.symbols[::3] = "Pt"
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        res = []
        for name in ("emt", "emt-ase"):
            a = atoms.copy()
            a.calc = get_calculator(name).factory()
            res.append((a.get_potential_energy(), a.get_forces(), a.get_stress()))
        assert res[0][0] == pytest.approx(res[1][0], abs=1e-10)
        assert np.allclose(res[0][1], res[1][1], atol=1e-10) and np.allclose(res[0][2], res[1][2], atol=1e-12)


def test_rattled_picks_follow_the_boltzmann_weights(monkeypatch):
    """Picks are distinct, correctly labelled candidates; with a proposal 3x wider than thermal the
    importance-corrected Boltzmann weights pull the picks far below the proposal's mean energy."""
    from ase.build import bulk

    from matscale.data.calculators import get_calculator
    from matscale.data.parents import Parent

    atoms = bulk("Cu", "fcc", a=3.59, cubic=True)
    parent = Parent("p", atoms, "fcc")
    calc = get_calculator("emt").factory()
    frames = recipes.rattled(parent, 300.0, "rattled-300", calc, np.random.default_rng(0))
    assert len(frames) == recipes.PICKS and len({f.sid for f in frames}) == recipes.PICKS
    a = atoms.copy()
    a.set_cell(frames[0].cell)
    a.positions = frames[0].positions
    a.calc = calc
    assert a.get_potential_energy() == pytest.approx(frames[0].energy)

    wide = lambda symbols, t: 3 * np.full(len(symbols), 0.066)  # Cu at 300 K: 0.066 Å
    monkeypatch.setattr(recipes, "thermal_sigma", wide)
    picked = [f.energy for k in range(6) for f in recipes.rattled(parent, 300.0, "rattled-300", calc,
                                                                  np.random.default_rng(k))]
    rng = np.random.default_rng(99)
    proposal = []
    for _ in range(60):
        b = atoms.copy()
        b.positions += rng.normal(0, 3 * 0.066, b.positions.shape)
        b.calc = calc
        proposal.append(b.get_potential_energy())
    assert np.mean(picked) < 0.5 * np.mean(proposal)


def test_output_must_not_exist(tiny_data_root):
    from matscale.data.synth import synthesize
    from matscale.errors import DataError

    with pytest.raises(DataError, match="not empty"):
        synthesize(tiny_data_root, 10, progress=False)
