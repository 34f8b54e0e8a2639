"""Element coverage: periodic-table positions, counts, the summary file, the heat map, and the
dataset comparison of fitted exponents."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from matscale.data import elements
from matscale.errors import DataError


@pytest.mark.parametrize("z,expected", [
    (1, (1, 1)), (2, (18, 1)), (5, (13, 2)), (11, (1, 3)), (18, (18, 3)), (26, (8, 4)), (54, (18, 5)),
    (56, (2, 6)), (57, (3, 9)), (71, (17, 9)), (72, (4, 6)), (79, (11, 6)), (86, (18, 6)), (92, (6, 10)),
    (104, (4, 7)), (118, (18, 7)),
])
def test_table_position(z, expected):
    assert elements.table_position(z) == expected


def test_table_positions_are_unique():
    cells = [elements.table_position(z) for z in range(1, 119)]
    assert len(set(cells)) == 118
    with pytest.raises(ValueError):
        elements.table_position(0)


def test_element_counts_and_summary_round_trip(tiny_data_root, tmp_path):
    from matscale.data import open_split

    counts = elements.element_counts(tiny_data_root)
    assert set(counts["split"]) == {"train", "val"}
    # check against a direct count over the train split
    ds = open_split(tiny_data_root, "train")
    atoms = {}
    for i in range(len(ds)):
        for s in ds[i].get_chemical_symbols():
            atoms[s] = atoms.get(s, 0) + 1
    train = counts[counts["split"] == "train"].set_index("element")
    assert train["atoms"].to_dict() == atoms
    assert (train["structures"] <= len(ds)).all() and (train["structures"] >= 1).all()

    path = tmp_path / "summary.json"
    elements.write_summary(tiny_data_root, path, made_by="test")
    info, stats, back = elements.read_summary(path)
    assert info["made_by"] == "test" and info["size_bytes"] > 0 and info["synth"]["calculator"] == "emt"
    pd.testing.assert_frame_equal(back.reset_index(drop=True), counts.reset_index(drop=True), check_dtype=False)
    sizes = elements.subset_sizes(stats)
    assert sizes.loc["all", "train structures"] == sizes.drop(index="all")["train structures"].sum() == len(ds)
    table = elements.quantity_table(stats, "energy_per_atom")
    assert ("train", "mean") in table.columns and ("val", "mean") in table.columns

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DataError, match="not a dataset summary"):
        elements.read_summary(bad)


def test_committed_teacher_summary_covers_forty_elements():
    info, stats, counts = elements.read_summary(elements.committed_summary())
    assert info["dataset"] == "omat24-teacher-v1" and info["synth"]["calculator"] == "chgnet"
    assert counts["element"].nunique() >= 40
    assert set(stats["subset"]) - {"all"} == set(info["synth"]["counts"]["train"])
    natoms = stats[(stats["quantity"] == "natoms") & (stats["subset"] != "all")]
    for split in ("train", "val"):
        assert natoms[natoms["split"] == split]["count"].sum() == sum(info["synth"]["counts"][split].values())


def test_periodic_table_chart():
    from matscale.charts_elements import periodic_table

    counts = pd.DataFrame({"element": ["H", "O", "Fe"], "Z": [1, 8, 26], "structures": [1, 2, 3],
                           "atoms": [2, 4, 9]})
    two = pd.concat([counts.assign(dataset="a"), counts.iloc[:1].assign(dataset="b")])
    spec = periodic_table(two).to_dict()
    assert len(spec["hconcat"]) == 2
    titles = [c["title"] for c in spec["hconcat"]]
    assert titles == ["a: 3 elements", "b: 1 elements"]
    one = periodic_table(counts, facet=None).to_dict()
    values = next(iter(one["datasets"].values()))
    assert len(values) == 103 and sum(v["present"] for v in values) == 3
    fe = next(v for v in values if v["element"] == "Fe")
    assert (fe["group"], fe["row"], fe["atoms"]) == (8, 4, 9)
    with pytest.raises(DataError, match="lack column"):
        periodic_table(counts.drop(columns="atoms"))


def test_compare_recovers_known_exponents(monkeypatch):
    from matscale import dataset_comparison, study

    def table(alpha):
        d = np.array([300, 600, 1200, 2400, 4800])
        rows = [{"run_id": f"r{i}", "arch": arch, "size": "xs", "frac": f, "seed": 0, "n_train": float(x),
                 "val_loss": 3.0 * x ** -alpha * (1 + 0.01 * (-1) ** i), "params": 1e4, "finished": True,
                 "status": "completed", "trainable": True}
                for arch in ("schnet", "equiformer_v2")
                for i, (f, x) in enumerate(zip([0.05, 0.1, 0.2, 0.4, 0.8], d))]
        return pd.DataFrame(rows)

    tables = {"emt": table(0.25), "teach": table(0.4)}
    monkeypatch.setattr(study, "results", lambda name, runs_root="runs": tables[name])
    cmp = dataset_comparison.compare({"EMT": "emt", "Teacher": "teach"})
    got = cmp.summary.set_index(["dataset", "arch"])["value"]
    assert got[("EMT", "schnet")] == pytest.approx(0.25, abs=0.01)
    assert got[("Teacher", "equiformer_v2")] == pytest.approx(0.4, abs=0.01)
    assert set(cmp.summary["law"]) == {"power"}
    wide = cmp.wide()
    assert list(wide.index) == ["equiformer_v2", "schnet"] and "Teacher: exponent" in wide.columns
    assert set(cmp.fits_of("schnet")) == {"EMT", "Teacher"}
    assert set(cmp.points["dataset"]) == {"EMT", "Teacher"}
