"""Dataset fingerprints enter the run id: the same settings on two datasets are two runs.

The bug this guards against: with `data=None` the dataset came from $MATSCALE_DATA at run
time while the run id hashed `data: None`, so a sweep on a second dataset skipped every
point as already finished.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from matscale.config import TrainConfig
from matscale.data import default
from matscale.data.fingerprint import fingerprint, memory_fingerprint, synth_fingerprint
from matscale.errors import ConfigError
from matscale.sweep import run_sweep

BASE = dict(arch="mean", subsets=("rattled-300",), frac=1.0, val_frac=1.0, epochs=1, batch_size=8, device="cpu")


@pytest.fixture()
def two_datasets(tmp_path, tiny_data_root):
    """The tiny synthetic set, a copy of it elsewhere, and 'real' data: a copy without synth.json
    whose metadata differs (its first training subset lost its last row's natoms entry)."""
    moved = tmp_path / "moved"
    shutil.copytree(tiny_data_root, moved)
    real = tmp_path / "real"
    shutil.copytree(tiny_data_root, real)
    (real / "synth.json").unlink()
    return tiny_data_root, moved, real


def test_synthetic_fingerprint_is_the_generator_manifest(tiny_data_root, two_datasets):
    _, moved, real = two_datasets
    fp = fingerprint(tiny_data_root)
    assert fp == synth_fingerprint(300, seed=0, calculator="emt")  # derived, not read from floats
    assert fingerprint(moved) == fp  # a dataset moved to another folder keeps its id
    assert fp != synth_fingerprint(300, seed=1) != synth_fingerprint(301)
    content = fingerprint(real)
    assert content.startswith("content-") and content != fp
    meta = next(real.glob("train/*/metadata.npz"))
    arrays = dict(np.load(meta))
    arrays["natoms"] = arrays["natoms"][:-1]
    np.savez(meta, **arrays)
    assert fingerprint(real) != content  # re-labelled / re-cut data is another dataset


def test_same_config_on_two_datasets_gives_two_run_ids(tiny_data_root, two_datasets):
    _, moved, real = two_datasets
    a = TrainConfig(**BASE, data=str(tiny_data_root)).validate()
    assert a.data_fingerprint == fingerprint(tiny_data_root)
    assert TrainConfig(**BASE, data=str(moved)).validate().run_id() == a.run_id()
    b = TrainConfig(**BASE, data=str(real)).validate()
    assert b.run_id() != a.run_id()
    assert TrainConfig(**BASE, size="base", data=str(real)).run_id() == b.run_id()  # run_id() resolves it too


def test_default_dataset_fingerprint_is_derived_without_generating(tmp_path, monkeypatch):
    root = tmp_path / "not-yet"
    monkeypatch.setenv(default.ENV_VAR, str(root))
    c = TrainConfig(**BASE).validate(check_device=False)
    assert c.data_fingerprint == synth_fingerprint(default.DEFAULT_STRUCTURES, default.DEFAULT_SEED,
                                                   default.DEFAULT_CALCULATOR)
    assert not root.exists()  # nothing was generated


def test_missing_folder_is_a_config_error_unless_a_fingerprint_is_recorded(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig(**BASE, data=str(tmp_path / "nowhere")).validate()
    recorded = TrainConfig(**BASE, data=str(tmp_path / "nowhere"), data_fingerprint="content-0123")
    assert recorded.validate().data_fingerprint == "content-0123"  # a run trained elsewhere


def test_memory_fingerprint_hashes_contents(emt_structures):
    a = memory_fingerprint(emt_structures[:4], emt_structures[4:6])
    assert a.startswith("memory-") and a == memory_fingerprint(emt_structures[:4], emt_structures[4:6])
    assert a != memory_fingerprint(emt_structures[:4], emt_structures[4:7])
    moved = [s.copy() for s in emt_structures[:4]]
    moved[0].calc = emt_structures[0].calc
    moved[0].positions[0, 0] += 1e-3
    assert memory_fingerprint(moved, emt_structures[4:6]) != a


def test_a_sweep_on_a_second_dataset_trains(tmp_path, two_datasets):
    first, _, second = two_datasets
    root = tmp_path / "runs"
    done = run_sweep([TrainConfig(**BASE, data=str(first))], root=root, max_parallel=1, progress=False)
    assert list(done["action"]) == ["new"] and list(done["status"]) == ["completed"]
    again = run_sweep([TrainConfig(**BASE, data=str(first))], root=root, max_parallel=1, progress=False)
    assert list(again["action"]) == ["skip"]
    other = run_sweep([TrainConfig(**BASE, data=str(second))], root=root, max_parallel=1, progress=False)
    assert list(other["action"]) == ["new"] and list(other["status"]) == ["completed"]
    assert other["run_id"][0] != done["run_id"][0]
    assert len(list(root.glob("mean-*/summary.json"))) == 2
