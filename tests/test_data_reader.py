"""Reading OMat24-layout data: items, metadata, pickling, DataLoader, fractions, fairchem round trip."""
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from matscale.data.reader import open_split, open_splits
from matscale.data.subsets import SUBSETS


def test_items_are_labelled_atoms(tiny_data_root):
    ds = open_split(tiny_data_root, "val")
    atoms = ds[0]
    assert atoms.info["subset"] == ds.subsets[0] and atoms.info["parent_id"] == ds.parent_ids[0]
    assert "sid" in atoms.info and atoms.info["calc_id"] == atoms.info["subset"]
    assert atoms.get_forces().shape == (len(atoms), 3) and atoms.get_stress().shape == (6,)
    assert np.isfinite(atoms.get_potential_energy())
    assert len(ds[-1]) == ds.natoms[-1] and len(ds[1:4]) == 3
    with pytest.raises(IndexError):
        ds[len(ds)]
    # mutating a returned structure never changes the dataset
    atoms.calc.results["forces"][:] = 0.0
    assert np.abs(ds[0].get_forces()).max() > 0
    # subsets present, in OMat24 order
    assert ds.subset_names == SUBSETS


def test_subset_selection_and_batch_collation(tiny_data_root):
    from matscale.data.batch import collate

    ds = open_split(tiny_data_root, "train", subsets="rattled-300,aimd-from-PBE-3000-nvt")
    assert set(ds.subsets) == {"rattled-300", "aimd-from-PBE-3000-nvt"}
    batch = collate([ds[i] for i in range(4)])
    assert batch.num_structures == 4 and batch.forces.shape == (int(ds.natoms[:4].sum()), 3)
    assert batch.stress.shape == (4, 3, 3) and batch.sid[0] == ds[0].info["sid"]


def test_cache_returns_equal_structures(tiny_data_root):
    plain = open_split(tiny_data_root, "val")
    cached = open_split(tiny_data_root, "val", cache=True).preload()
    for i in (0, 7, len(plain) - 1):
        a, b = plain[i], cached[i]
        assert a.info == b.info and np.array_equal(a.positions, b.positions)
        assert np.array_equal(a.get_forces(), b.get_forces()) and a.get_potential_energy() == b.get_potential_energy()


def test_pickle_and_dataloader_workers(tiny_data_root):
    import torch

    ds = open_split(tiny_data_root, "val")
    ds[0]  # open an LMDB handle in this process first
    clone = pickle.loads(pickle.dumps(ds))
    assert clone[3].info["sid"] == ds[3].info["sid"]
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, collate_fn=lambda xs: [a.info["sid"] for a in xs])
    sids = [s for batch in loader for s in batch]
    assert sids == [ds.record(i).info["sid"] for i in range(len(ds))]


def test_fractions_are_nested_stratified_grouped_and_seeded(tiny_data_root):
    full = open_split(tiny_data_root, "train")
    sel = {f: set(open_split(tiny_data_root, "train", frac=f, seed=3).parent_ids) for f in (0.01, 0.1, 0.5, 1.0)}
    assert sel[0.01] <= sel[0.1] <= sel[0.5] <= sel[1.0] == set(full.parent_ids)
    half = open_split(tiny_data_root, "train", frac=0.5, seed=3)
    assert len(half) < len(full) and set(half.subsets) == set(SUBSETS)  # ≥ 1 parent per subset
    # grouped by parent within each subset: a chosen (subset, parent) keeps all its rows
    chosen = set(zip(half.subsets, half.parent_ids))
    assert len(half) == sum((s, p) in chosen for s, p in zip(full.subsets, full.parent_ids))
    # the rattled-1000 stratum holds roughly half of its rows
    n_sub = (full.subsets == "rattled-1000").sum()
    assert abs((half.subsets == "rattled-1000").sum() - 0.5 * n_sub) <= 5
    # another seed picks other parents; the same seed the same ones
    other = set(open_split(tiny_data_root, "train", frac=0.5, seed=4).parent_ids)
    assert other != set(half.parent_ids)
    assert set(open_split(tiny_data_root, "train", frac=0.5, seed=3).parent_ids) == set(half.parent_ids)


def test_fraction_selection_on_many_parents():
    from matscale.data.fractions import select_rows

    rng = np.random.default_rng(0)
    subset = np.repeat(np.arange(3), 2000)
    parent = np.array([f"s{s}p{p}" for s, p in zip(subset, rng.integers(0, 400, size=6000))])
    prev = set()
    for frac in (0.01, 0.05, 0.1, 0.3, 0.9):
        rows = select_rows(subset, parent, frac, seed=0)
        assert prev <= set(rows.tolist())
        prev = set(rows.tolist())
        for s in range(3):  # each stratum close to its share
            assert abs((subset[rows] == s).sum() / 2000 - frac) < 0.01 + 2 * 15 / 2000


def test_val_never_depends_on_frac(tiny_data_root):
    _, val_a = open_splits(tiny_data_root, frac=0.1, seed=0)
    _, val_b = open_splits(tiny_data_root, frac=1.0, seed=0)
    assert list(val_a.parent_ids) == list(val_b.parent_ids)
    _, val_c = open_splits(tiny_data_root, frac=0.1, val_frac=0.5, seed=0)
    _, val_d = open_splits(tiny_data_root, frac=0.7, val_frac=0.5, seed=0)
    assert list(val_c.parent_ids) == list(val_d.parent_ids)
    assert set(val_c.parent_ids) <= set(val_b.parent_ids) and set(val_c.subsets) == set(SUBSETS)


def test_multiple_shards_and_missing_metadata(tiny_data_root, tmp_path):
    """Shards are read in sorted order with metadata.npz covering them all; without metadata
    natoms is decoded instead."""
    from matscale.data.writer import SubsetWriter
    from matscale.data.recipes import Frame

    src = open_split(tiny_data_root, "train", subsets=["aimd-from-PBE-1000-nvt"])
    writer = SubsetWriter(tmp_path / "train" / "aimd-from-PBE-1000-nvt", "aimd-from-PBE-1000-nvt", shard_rows=7)
    for i in range(len(src)):
        r = src.record(i)
        writer.write(Frame(r.numbers, r.positions, r.cell, r.energy, r.forces, r.stress, r.info["sid"],
                           r.info["parent_id"], r.info["subset"], r.info["task_type"]))
    assert writer.close() == len(src)
    d = tmp_path / "train" / "aimd-from-PBE-1000-nvt"
    assert len(list(d.glob("data.*.aselmdb"))) == -(-len(src) // 7) and not (d / "data.aselmdb").exists()
    ds = open_split(tmp_path, "train")
    assert [ds.record(i).info["sid"] for i in range(len(ds))] == [src.record(i).info["sid"] for i in range(len(src))]
    assert np.array_equal(ds.natoms, src.natoms)
    (d / "metadata.npz").unlink()
    (d / "parents.npz").unlink()
    ds = open_split(tmp_path, "train")
    assert np.array_equal(ds.natoms, src.natoms) and list(ds.parent_ids) == list(src.parent_ids)
    # one subset with metadata, one without: only the latter is decoded
    shutil.copytree(Path(tiny_data_root) / "train" / "rattled-300", tmp_path / "train" / "rattled-300")
    mixed = open_split(tmp_path, "train")
    other = open_split(tiny_data_root, "train", subsets=["rattled-300"])
    assert mixed.subset_names == ("rattled-300", "aimd-from-PBE-1000-nvt")
    assert np.array_equal(mixed.natoms, np.concatenate([other.natoms, src.natoms]))


def test_fairchem_reads_our_files(tiny_data_root):
    """fairchem's own AseDBDataset reads a synthetic subset: same rows, labels, natoms metadata."""
    from fairchem.core.datasets import AseDBDataset

    d = Path(tiny_data_root) / "val" / "rattled-relax"
    fc = AseDBDataset(config={"src": str(d)})
    ours = open_split(tiny_data_root, "val", subsets=["rattled-relax"])
    assert len(fc) == len(ours)
    assert np.array_equal(fc.get_metadata("natoms", list(range(len(fc)))), ours.natoms)
    for i in (0, len(fc) - 1):
        a, b = fc.get_atoms(i), ours[i]
        assert a.info["sid"] == b.info["sid"]
        assert np.allclose(a.get_forces(), b.get_forces()) and np.allclose(a.get_stress(), b.get_stress())
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy())
    # several subsets as a src list, and the graph-ready data object
    fc2 = AseDBDataset(config={"src": [str(d), str(Path(tiny_data_root) / "val" / "rattled-300")]})
    assert len(fc2) == len(ours) + len(open_split(tiny_data_root, "val", subsets=["rattled-300"]))
    obj = fc[0]
    assert tuple(obj.stress.shape) == (1, 3, 3) and int(obj.natoms) == ours.natoms[0]
