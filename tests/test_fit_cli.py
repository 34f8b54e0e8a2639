"""`python -m matscale fit`: tables, JSON, model comparison and one-line errors (exit 2)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matscale.fit.cli import main

DATA = Path(__file__).parent / "data"
OPTIMETAL = str(DATA / "optimetal_scaling_results.csv")
SWEEP = ["--where", "sweep=data", "--where", "model=2b/variant1", "--x", "size_key", "--y", "val_loss"]


def _json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_output_has_the_documented_shape(capsys):
    out = _json(capsys, [OPTIMETAL, *SWEEP, "--replicates", "--law", "broken"])
    assert out["law"] == "broken" and out["n_points"] == 7
    assert set(out["params"]) == {"alpha1", "alpha2", "x_c"}
    for p in out["params"].values():
        assert set(p) == {"value", "stderr", "ci95"} and p["ci95"][0] < p["value"] < p["ci95"][1]
    assert out["params"]["alpha1"]["value"] == pytest.approx(0.15, abs=0.02)
    assert out["aicc"] > out["aic"] and out["ci_method"] == "profile likelihood" and out["errorbars"]


def test_readable_table(capsys):
    assert main([OPTIMETAL, *SWEEP, "--replicates", "--law", "power_floor"]) == 0
    captured = capsys.readouterr()
    assert "law power_floor" in captured.out and "95% CI (profile likelihood)" in captured.out
    assert "alpha" in captured.out and "AICc" in captured.out
    assert "E sits on its bound" in captured.err  # warnings also go to stderr


def test_compare_ranks_the_broken_law_first(capsys):
    out = _json(capsys, [OPTIMETAL, *SWEEP, "--replicates", "--compare"])
    assert out["best"] == "broken" and out["compare"][0]["rank"] == 1
    assert {r["law"] for r in out["compare"]} >= {"power", "power_floor", "broken", "broken_amp"}
    assert main([OPTIMETAL, *SWEEP, "--replicates", "--compare"]) == 0
    assert "AICc ranking" in capsys.readouterr().out


def test_sigma_column_bootstrap_and_output_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = np.geomspace(1e4, 1e8, 10)
    sigma = np.full(x.size, 0.01)
    df = pd.DataFrame({"n": x, "loss": 2.0 + 40 * x**-0.3 + rng.normal(0, 0.01, x.size), "err": sigma})
    csv = tmp_path / "runs.csv"
    df.to_csv(csv, index=False)
    target = tmp_path / "fit.json"
    out = _json(capsys, [str(csv), "--x", "n", "--y", "loss", "--sigma", "err", "--law", "power_floor",
                         "--bootstrap", "30", "--output", str(target)])
    assert out["ci_method"].startswith("bootstrap")
    assert out["params"]["E"]["ci95"][0] < 2.0 < out["params"]["E"]["ci95"][1]
    assert json.loads(target.read_text()) == out
    assert not list(tmp_path.glob(".*tmp"))


def test_joint_law_from_compute_with_huber(capsys):
    out = _json(capsys, [str(DATA / "chinchilla_svg_extracted_data.csv"), "--n", "Model Size", "--c", "Training FLOP",
                         "--y", "loss", "--law", "joint", "--loss", "huber", "--log", "--drop-highest", "5",
                         "--bootstrap", "20"])
    assert out["n_points"] == 240 and set(out["params"]) == {"E", "A", "alpha", "B", "beta"}
    assert out["params"]["E"]["value"] == pytest.approx(1.817, abs=0.03)
    assert out["compute_optimal"]["a"] == pytest.approx(0.513, abs=0.03)
    assert out["ci_method"].startswith("bootstrap")


def test_frontier_over_runs(tmp_path, capsys):
    rows = []
    law = lambda c: 1.5 + 50 * c**-0.1  # noqa: E731
    for run in range(4):  # each run reaches the front over one decade of compute...
        for c in np.geomspace(1e15 * 10**run, 1e16 * 10**run, 6):
            rows.append({"run": run, "flops": c, "loss": law(c)})
    for c in np.geomspace(1e15, 1e19, 20):  # ...and one run is always worse
        rows.append({"run": 9, "flops": c, "loss": law(c) + 0.1})
    csv = tmp_path / "curves.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    out = _json(capsys, [str(csv), "--x", "flops", "--y", "loss", "--run", "run", "--law", "frontier", "--ci", "wald"])
    assert set(out["params"]) == {"L_inf", "F", "gamma"}
    assert out["params"]["gamma"]["value"] == pytest.approx(0.1, rel=1e-4)
    assert out["params"]["L_inf"]["value"] == pytest.approx(1.5, rel=1e-4)
    assert out["n_points"] == 21  # 24 front points minus 3 ties at the decade edges


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.csv", "--x", "a", "--y", "b"], "no such file"),
        ([OPTIMETAL, "--x", "nope", "--y", "val_loss"], "no column 'nope'"),
        ([OPTIMETAL, *SWEEP, "--law", "broken_floor", "--where", "seed=1", "--drop-highest", "5"], "at least 6"),
        ([OPTIMETAL, "--where", "model=none", "--x", "size_key", "--y", "val_loss"], "no rows left"),
        ([OPTIMETAL, "--x", "size_key", "--y", "val_loss", "--law", "joint"], "--n COL is required"),
        ([OPTIMETAL, *SWEEP, "--loss", "huber", "--ci", "profile"], "bootstrap"),
    ],
)
def test_errors_print_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_bad_values_in_the_csv(tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    pd.DataFrame({"x": [1e3, 1e4, 1e5, 1e6, 1e7], "y": [1.0, 0.8, float("nan"), 0.6, 0.5]}).to_csv(csv, index=False)
    assert main([str(csv), "--x", "x", "--y", "y"]) == 2
    assert "NaN" in capsys.readouterr().err
    pd.DataFrame({"x": [1e3, 1e4, 1e5, 0.0], "y": [1.0, 0.8, 0.7, 0.6]}).to_csv(csv, index=False)
    assert main([str(csv), "--x", "x", "--y", "y"]) == 2
    assert "non-positive" in capsys.readouterr().err


def test_wired_into_python_m_matscale():
    argv = [OPTIMETAL, *SWEEP, "--replicates", "--law", "broken", "--ci", "none", "--json"]
    proc = subprocess.run([sys.executable, "-m", "matscale", "fit", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["law"] == "broken"
