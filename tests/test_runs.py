"""runs/: atomic writes, loading all runs as one DataFrame, one run's metrics."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from matscale import runs
from matscale.config import TrainConfig
from matscale.errors import MatscaleError
from matscale.train.loop import train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, emt_structures, emt_val_structures):
    root = tmp_path_factory.mktemp("runs")
    out = []
    for arch, size in (("fcn", "xs"), ("linear", None)):
        cfg = TrainConfig(arch=arch, size=size, epochs=2, batch_size=8, device="cpu", run_root=str(root))
        out.append(train(cfg, train_set=emt_structures[:16], val_set=emt_val_structures[:8], quiet=True))
    return root, out


def test_load_gives_one_row_per_run_with_config_and_summary(two_runs):
    root, results = two_runs
    df = runs.load(root)
    assert sorted(df["run_id"]) == sorted(r.run_id for r in results)
    row = df.set_index("arch").loc["fcn"]
    assert row["status"] == "completed" and row["epochs"] == 2 and row["batch_size"] == 8
    assert row["params_non_embedding"] > 0 and row["flops"] > 0 and row["best_val_loss"] > 0
    assert df.set_index("arch").loc["linear", "trainable"] == False  # noqa: E712
    assert "git_commit" in df and "normalization" not in df  # nested summary entries stay out


def test_metrics_by_id_or_path_and_all_metrics(two_runs):
    root, results = two_runs
    fcn = results[0]
    by_id = runs.metrics(fcn.run_id, root=root)
    by_path = runs.metrics(fcn.run_dir)
    pd.testing.assert_frame_equal(by_id, by_path)
    assert list(by_id["epoch"]) == [1, 2]
    stacked = runs.all_metrics(root)
    assert set(stacked["run_id"]) == {r.run_id for r in results} and len(stacked) == 3
    with pytest.raises(MatscaleError, match="no run folder"):
        runs.metrics("nope", root=root)


def test_no_temporary_files_are_left_behind(two_runs):
    root, _ = two_runs
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "summary.json"
    runs.atomic_write_json(path, {"status": "completed"})
    with pytest.raises(TypeError):
        runs.atomic_write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"status": "completed"}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_metrics_csv_round_trips_floats_exactly(tmp_path):
    run = runs.RunDir(tmp_path / "r")
    rows = [{"epoch": 1, "val_loss": 0.1 + 0.2, "flops": 1.2345678901234567e15}]
    run.write_metrics(rows)
    back = run.read_metrics()
    assert back["val_loss"].iloc[0] == 0.1 + 0.2 and back["flops"].iloc[0] == 1.2345678901234567e15


def test_empty_or_missing_root_loads_empty(tmp_path):
    assert runs.load(tmp_path / "none").empty
    assert runs.all_metrics(tmp_path).empty


def test_relative_roots_resolve_from_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = runs.resolve_root("runs")
    assert root.is_absolute()
    if runs.repo_root() is not None:
        assert root == runs.repo_root() / "runs"
