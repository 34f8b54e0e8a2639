"""book/train.ipynb: its parameters are TrainConfig fields, and it runs under papermill on the
tiny dataset (from the repository root and from book/), leaving a run whose val loss fell."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from matscale.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "book" / "train.ipynb"


def _parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    return nb, cells[0]


def test_notebook_parameters_are_config_fields_with_valid_values():
    nb, cell = _parameters_cell()
    assert nb.metadata["kernelspec"]["name"] == "python3"
    values: dict = {}
    exec(cell.source, {}, values)
    unknown = set(values) - set(TrainConfig.field_names())
    assert not unknown, f"notebook parameters that are not TrainConfig fields: {unknown}"
    assert {"arch", "size", "frac", "epochs", "lr", "batch_size", "data"} <= set(values)
    assert values["data"] is None and values["frac"] == 0.01  # defaults: the embedded dataset at 1 %
    # the notebook's values are the config's defaults (size aside: the notebook pins one)
    defaults = TrainConfig()
    differ = {k: v for k, v in values.items() if k != "size" and v != getattr(defaults, k)}
    assert not differ, f"notebook parameters differ from TrainConfig defaults: {differ}"
    TrainConfig(**{**values, "device": "cpu"}).validate()


@pytest.mark.parametrize("cwd", ["repo", "book"])
def test_notebook_runs_with_papermill_on_the_tiny_set(tmp_path, tiny_data_root, cwd):
    out = tmp_path / "out.ipynb"
    runs_root = tmp_path / "runs"
    params = ["-p", "data", str(tiny_data_root), "-p", "subsets", "rattled-1000,rattled-300-subsampled", "-p", "run_root", str(runs_root), "-p", "arch", "fcn",
              "-p", "size", "xs", "-p", "epochs", "3", "-p", "batch_size", "16", "-p", "lr", "0.003",
              "-p", "device", "cpu", "-p", "seed", "0" if cwd == "repo" else "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOK), str(out), *params, "--no-progress-bar",
                           "-k", "python3"], cwd=REPO if cwd == "repo" else REPO / "book", capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run_dirs = [p for p in runs_root.iterdir() if p.is_dir()]
    assert {p.name.split("-")[0] for p in run_dirs} == {"fcn", "linear"}
    fcn = next(p for p in run_dirs if p.name.startswith("fcn"))
    m = pd.read_csv(fcn / "metrics.csv")
    assert len(m) == 3 and m["val_loss"].iloc[-1] < m["val_loss"].iloc[0]
    assert json.loads((fcn / "config.json").read_text())["config"]["subsets"] == ["rattled-1000", "rattled-300-subsampled"]
    assert json.loads((fcn / "summary.json").read_text())["status"] == "completed"
    text = out.read_text()
    assert "Traceback" not in text and "Warning" not in text
    for needle in ("meV/atom", "meV/Å", "meV/Å³", "linear baseline", "vegaEmbed"):
        assert needle in text or needle.replace("/", "\\/") in text, needle
