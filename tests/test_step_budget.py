"""Issue 13's engine: a `max_steps` budget (equal steps across fractions), step-based
validation, structure-level fractions and a validation set drawn from every parent."""
from __future__ import annotations

import json

import numpy as np
import pytest

from matscale.config import TrainConfig
from matscale.data import open_split
from matscale.data.fractions import select_per_parent, select_structures
from matscale.errors import ConfigError, DataError
from matscale.train import train
from matscale.train.data import open_datasets


def _cfg(root, tmp_path, **kw):
    base = dict(arch="schnet", size="xs", data=str(root), frac=0.05, frac_by="structure", batch_size=4,
                max_steps=7, val_every_steps=3, val_per_parent=1, lr=1e-3, device="cpu",
                run_root=str(tmp_path / "runs"))
    return TrainConfig(**{**base, **kw})


def test_max_steps_is_the_step_count_and_the_schedule_length(tiny_data_root, tmp_path):
    res = train(_cfg(tiny_data_root, tmp_path), quiet=True)
    summary = json.loads((res.run_dir / "summary.json").read_text())
    assert summary["steps"] == 7 and summary["total_steps"] == 7
    rows = res.metrics
    assert list(rows["step"]) == [3, 6, 7]  # every 3 steps, and after the last
    cfg = _cfg(tiny_data_root, tmp_path)
    # the cosine reaches min_lr_factor × lr exactly at the true last step
    assert rows["lr"].iloc[-1] == pytest.approx(cfg.lr * cfg.min_lr_factor, rel=1e-6)
    # a fraction 4x larger takes the same number of steps (fewer passes)
    res2 = train(_cfg(tiny_data_root, tmp_path, frac=0.2), quiet=True)
    s2 = json.loads((res2.run_dir / "summary.json").read_text())
    assert s2["steps"] == 7 and s2["samples_seen"] == summary["samples_seen"] == 28
    assert s2["n_train"] > 3 * summary["n_train"]


def test_new_settings_keep_old_run_ids_at_their_defaults_and_are_checked():
    old = TrainConfig(arch="schnet", size="xs", frac=0.08)
    assert old.result_settings().keys().isdisjoint({"max_steps", "val_every_steps", "frac_by", "val_per_parent"})
    assert TrainConfig(arch="schnet", size="xs", frac=0.08, max_steps=100).run_id() != old.run_id()
    for bad in ({"max_steps": -1}, {"val_every_steps": -2}, {"val_per_parent": -1}, {"frac_by": "atoms"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            TrainConfig(arch="schnet", size="xs", **bad).validate(check_device=False)


def test_structure_fractions_are_nested_stratified_and_reach_below_one_parent():
    subset = np.repeat(["a", "b"], [400, 100])
    small, large = select_structures(subset, 0.01, 0), select_structures(subset, 0.1, 0)
    assert len(small) == 5 and set(small) <= set(large) and len(large) == 50
    assert (subset[small] == "b").sum() == 1 and (subset[large] == "b").sum() == 10
    assert not np.array_equal(select_structures(subset, 0.1, 1), large)  # the seed matters


def test_validation_covers_every_parent_and_is_the_same_for_every_run(tiny_data_root, tmp_path):
    full = open_split(tiny_data_root, "val")
    parents = set(map(str, full.parent_ids))
    vals = []
    for frac, seed in [(0.02, 0), (0.3, 1), (1.0, 2)]:
        _, val = open_datasets(_cfg(tiny_data_root, tmp_path, frac=frac, seed=seed, val_per_parent=2).validate())
        vals.append([val[i].info.get("sid") for i in range(len(val))])
        assert set(map(str, val.parent_ids)) == parents  # every validation parent, whatever the run
    assert vals[0] == vals[1] == vals[2]
    picked = select_per_parent(full.parent_ids, 2, 0)
    counts = np.unique(np.asarray(full.parent_ids, dtype=str)[picked], return_counts=True)[1]
    assert len(picked) == len(vals[0]) and len(counts) == len(parents) and set(counts) == {2}
    with pytest.raises(DataError, match="per_parent"):
        open_split(tiny_data_root, "val", frac=0.5, per_parent=2)
