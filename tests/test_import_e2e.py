"""Must-show: one's own DFT-style data end to end through the CLI, as a new user would run it:
extxyz (EMT labels, 1–32-atom cells, virials in info, one frame without stress) -> `data import`
-> `data stats` -> `train` -> `evaluate`, each a separate `python -m matscale` process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ase.io
import pytest

from test_data_import import as_info, emt_frames

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "matscale", *map(str, args)], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{args[:2]} failed:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.mark.slow
def test_extxyz_import_stats_train_evaluate_through_the_cli(tmp_path):
    frames = emt_frames(30, seed=7, max_atoms=32)
    sizes = sorted({len(a) for a in frames})
    assert sizes[0] == 1 and sizes[-1] >= 16
    src = tmp_path / "mine.extxyz"
    ase.io.write(src, as_info(frames, "virial", drop_stress=(5,)), format="extxyz")  # frame 5: no stress

    out = cli("data", "import", src, "--out", tmp_path / "data", "--subset", "mine", "--val-frac", "0.3",
              "--group-key", "config_type", "--json", cwd=tmp_path)
    report = json.loads(out.stdout)
    n_train, n_val = report["structures"]["train"], report["structures"]["val"]
    assert n_train + n_val == 30 and n_val >= 6 and report["groups"]["val"] >= 2
    stress = report["coverage"]["train"]["stress"] + report["coverage"]["val"]["stress"]
    assert stress == 29 and "have no stress label" in out.stderr
    assert "validation split has only" in out.stderr  # < 20 validation structures: warned

    stats = json.loads(cli("data", "stats", tmp_path / "data", "--json", cwd=tmp_path).stdout)
    cov = {(c["split"], c["subset"]): c for c in stats["coverage"]}
    assert cov["train", "mine"]["structures"] == n_train and cov["val", "mine"]["structures"] == n_val
    assert cov["train", "mine"]["stress"] + cov["val", "mine"]["stress"] == 29
    table = cli("data", "stats", tmp_path / "data", "--output", tmp_path / "stats.json", cwd=tmp_path).stdout
    assert "label coverage" in table and json.loads((tmp_path / "stats.json").read_text()) == stats

    cli("train", "--data", tmp_path / "data", "--arch", "fcn", "--size", "xs", "--frac", "1", "--val-frac", "1",
        "--epochs", "1", "--batch-size", "8", "--run-root", tmp_path / "runs", "--quiet", cwd=tmp_path)
    (run,) = [p for p in (tmp_path / "runs").iterdir() if (p / "summary.json").exists()]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["n_train"] == n_train and summary["n_val"] == n_val
    assert summary["label_coverage"]["train"]["structures"] == n_train
    assert any("validation uses only" in w for w in summary["warnings"])

    res = cli("evaluate", run, "--json", "--output", tmp_path / "eval.json", "--no-equivariance", cwd=tmp_path)
    metrics = json.loads(res.stdout)
    assert metrics == json.loads((tmp_path / "eval.json").read_text())
    assert metrics["n_structures"] == n_val
    for key in ("val_energy_mae_eV_atom", "val_force_l2mae_eV_A", "val_stress_mae_eV_A3", "val_loss"):
        assert 0 < metrics[key] < 100, key
    text = cli("evaluate", run, "--no-equivariance", cwd=tmp_path).stdout
    assert "energy per atom MAE" in text
