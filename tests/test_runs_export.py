"""`python -m matscale runs ls|export`: study membership recorded by the sweep, a `study` column in
`matscale.runs.load()`, and an export whose columns `fit` reads directly (round trip), with seeds
that select different structure counts at one fraction grouped as replicates."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import write_study_run
from matscale import membership, runs
from matscale.config import TrainConfig
from matscale.errors import ConfigError
from matscale.sweep import expand
from matscale.sweep.runner import run_sweep

FRACS = [0.01, 0.03, 0.1, 0.3, 1.0]
TRUE = dict(E=5.0, B=400.0, beta=0.5)  # loss = E + B D^-beta


def _fake_point(p):
    """Write the point's run folder as the loop would, with seed-dependent structure counts."""
    config = TrainConfig.from_dict(p.config)
    D = int(round(config.frac * 20000)) + (1 if config.seed else 0)  # e.g. 200 vs 201 structures
    noise = 1.0 + 0.01 * (1 if config.seed else -1)
    loss = (TRUE["E"] + TRUE["B"] * (config.frac * 20000) ** -TRUE["beta"]) * noise
    write_study_run(p.run_dir.parent, config, loss, N=5000, D=D)
    return {"run_id": p.run_id, "status": "completed", "error": None, "wall_s": 0.01, "action": "new"}


@pytest.fixture(scope="module")
def study_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    grid = {"base": {"arch": "fcn", "size": "xs", "epochs": 2}, "grid": {"frac": FRACS, "seed": [0, 1]}}
    run_sweep(expand(grid), root=root, progress=False, name="data", run_fn=_fake_point)
    # a second study sharing one point (frac 1, seed 0) and adding another
    other = {"base": {"arch": "fcn", "size": "xs", "epochs": 2, "seed": 0}, "grid": {"frac": [1.0, 0.5]}}
    run_sweep(expand(other), root=root, progress=False, name="other", run_fn=_fake_point)
    write_study_run(root, TrainConfig(arch="fcn", size="s", frac=0.2, epochs=1), 9.0, 100, 10)  # no study
    return root


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "matscale", *args], capture_output=True, text=True, timeout=120)


def test_the_sweep_records_its_study_and_load_has_a_study_column(study_root):
    assert membership.names(study_root) == ["data", "other"]
    assert len(membership.members(study_root, "data")) == 10
    df = runs.load(study_root).set_index("run_id")
    assert len(df) == 12
    shared = TrainConfig(arch="fcn", size="xs", epochs=2, frac=1.0, seed=0).validate(check_device=False).run_id()
    assert df.at[shared, "study"] == "data,other"  # one run, two studies; the id has no study in it
    assert df["study"].isna().sum() == 1
    with pytest.raises(ConfigError, match="known: data, other"):
        membership.members(study_root, "nope")


def test_runs_ls_filters_by_study(study_root):
    done = _cli("runs", "ls", "--root", str(study_root), "--study", "other")
    assert done.returncode == 0, done.stderr
    assert "2 run(s); completed 2" in done.stdout and "frac0.5" in done.stdout and "frac0.3" not in done.stdout
    bad = _cli("runs", "ls", "--root", str(study_root), "--study", "nope")
    assert bad.returncode == 2 and bad.stderr.startswith("error: no study 'nope'")


def test_runs_export_round_trips_into_fit(study_root, tmp_path):
    out = tmp_path / "results.csv"
    done = _cli("runs", "export", "--root", str(study_root), "--study", "data", "-o", str(out))
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert len(table) == 10 and {"N", "D", "C", "loss", "n_train", "study", "frac", "seed"} <= set(table.columns)
    # replicates share the nominal size D although their exact counts differ
    assert (table.groupby("frac")["D"].nunique() == 1).all() and (table.groupby("frac")["n_train"].nunique() == 2).all()
    fits = {}
    for x, extra in (("D", []), ("n_train", ["--group", "frac"])):
        fit = _cli("fit", str(out), "--x", x, "--y", "loss", "--law", "power_floor", "--replicates", *extra, "--json")
        assert fit.returncode == 0, fit.stderr
        fits[x] = {k: p["value"] for k, p in json.loads(fit.stdout)["params"].items()}
        assert fits[x]["alpha"] == pytest.approx(TRUE["beta"], rel=0.1), fits[x]
        assert fits[x]["E"] == pytest.approx(TRUE["E"], rel=0.2), fits[x]
    ungrouped = _cli("fit", str(out), "--x", "n_train", "--y", "loss", "--replicates")
    assert ungrouped.returncode == 2 and "--group frac" in ungrouped.stderr
    curves = tmp_path / "curves.csv"
    assert _cli("runs", "export", "--root", str(study_root), "--study", "data", "--curves", "-o", str(curves)).returncode == 0
    c = pd.read_csv(curves)
    assert len(c) == 10 * 4 and np.isfinite(c["C"]).all()
    front = _cli("fit", str(curves), "--x", "C", "--y", "loss", "--run", "run_id", "--law", "frontier", "--json")
    assert front.returncode == 0, front.stderr
