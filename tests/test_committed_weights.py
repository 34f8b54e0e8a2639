"""The default study ships the best checkpoint of its best run per architecture (small enough to
commit), so evaluate, load_model and the ASE calculator work on a fresh clone; every other run
says why it has no weights and which command recreates them."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from matscale import parity
from matscale.errors import CheckpointError
from matscale.train.checkpoint import load_model

REPO = Path(__file__).resolve().parents[1]
MAX_FILE_MB, MAX_TOTAL_MB = 5.0, 15.0


def _tracked_checkpoints() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "runs"], cwd=REPO, capture_output=True, text=True).stdout.split()
    return [REPO / p for p in out if "/checkpoints/" in p]


def test_best_run_per_architecture_has_small_committed_weights():
    best = parity.best_runs("default", REPO / "runs")
    assert set(best["arch"]) >= {"schnet", "equiformer_v2", "transformer"}
    assert best["has_weights"].all(), best[~best["has_weights"]][["arch", "run_id"]]
    tracked = _tracked_checkpoints()
    assert tracked, "no checkpoint is committed"
    assert all(p.name == "best.pt" for p in tracked), tracked  # no last.pt (optimiser state) is committed
    assert set(best["run_id"]) <= {p.parent.parent.name for p in tracked} <= parity.study_run_ids("default")
    sizes = [p.stat().st_size / 1e6 for p in tracked]
    assert max(sizes) <= MAX_FILE_MB and sum(sizes) <= MAX_TOTAL_MB, sizes


def test_committed_weights_serve_the_ase_calculator():
    from ase.build import bulk

    from matscale.calculator import MatscaleCalculator

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=0)
    for run_dir in parity.best_runs("default", REPO / "runs")["run_dir"]:
        atoms.calc = MatscaleCalculator(run_dir)
        energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        assert np.isfinite(energy) and forces.shape == (len(atoms), 3) and stress.shape == (6,)
        assert np.isfinite(forces).all() and np.isfinite(stress).all()


def test_a_run_without_weights_names_the_command_that_recreates_them():
    best = set(parity.best_runs("default", REPO / "runs")["run_id"])
    other = next(p for p in sorted((REPO / "runs").iterdir())
                 if (p / "summary.json").exists() and p.name not in best and not (p / "checkpoints" / "best.pt").exists())
    with pytest.raises(CheckpointError) as info:
        load_model(other)
    message = str(info.value)
    assert f"--config {other / 'config.json'} --force" in message and "--resume" not in message


def test_parity_page_shows_the_best_runs_and_explains_missing_weights(tiny_data_root, synthetic_study):
    errors, chart, notes = parity.parity_page("default", REPO / "runs", limit=4, data=str(tiny_data_root))
    assert not notes and chart is not None and len(errors) == len(parity.best_runs("default", REPO / "runs"))
    assert (errors["val structures"] == 4).all()
    for unit in ("meV/atom", "meV/Å", "meV/Å³"):
        assert any(unit in c for c in errors.columns)
    assert chart.to_dict()  # a valid Vega-Lite spec
    path, root = synthetic_study  # a study whose runs have no weights
    errors, chart, notes = parity.parity_page(path, root)
    assert chart is None and errors.empty and notes and all("--force" in n for n in notes)
