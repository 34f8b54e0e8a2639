"""book/train.ipynb (= train.ipynb at the repository root): its parameters are typed TrainConfig
fields, and it runs under papermill on the tiny dataset (the design-card command from the root of a
fresh clone's layout, and from book/), leaving a run whose val loss fell and charts that carry a
static PNG next to the interactive HTML (so JupyterLab, VS Code, nbconvert and GitHub show them)."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from matscale.book.params import train_config
from matscale.book.render import CHART_CLASS, STATIC_CLASS
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
    values.pop("__annotations__", None)
    unknown = set(values) - set(TrainConfig.field_names())
    assert not unknown, f"notebook parameters that are not TrainConfig fields: {unknown}"
    assert {"arch", "size", "frac", "epochs", "lr", "batch_size", "data"} <= set(values)
    assert values["data"] == "" and values["frac"] == 0.01  # defaults: the embedded dataset at 1 %
    # the notebook's values map onto the config's defaults (size aside: the notebook pins one)
    config, defaults = train_config(values), TrainConfig()
    assert config.data is None and config.subsets is None
    differ = {k: getattr(config, k) for k in values if k != "size" and getattr(config, k) != getattr(defaults, k)}
    assert not differ, f"notebook parameters differ from TrainConfig defaults: {differ}"
    train_config(values, device="cpu").validate()


def test_notebook_parameters_are_typed_for_papermill():
    """Every parameter is declared with its type (papermill --help-notebook shows it; no
    'Unable to parse' warning) and that type is the TrainConfig field's."""
    import typing

    from papermill.translators import PythonTranslator

    _, cell = _parameters_cell()
    params = PythonTranslator.inspect(cell)
    hints = typing.get_type_hints(TrainConfig)
    assert len(params) == len([ln for ln in cell.source.splitlines() if ln and not ln.startswith("#")])
    for p in params:
        assert p.inferred_type_name in ("str", "int", "float", "bool"), p
        hint = hints[p.name]
        allowed = {a.__name__ for a in typing.get_args(hint) if isinstance(a, type)} or {hint.__name__}
        assert p.inferred_type_name in allowed | {"str"}, (p, hint)
    assert (REPO / "train.ipynb").resolve() == NOTEBOOK.resolve(), "train.ipynb at the root is the book's page"


def fresh_clone_layout(dest: Path) -> Path:
    """The files a fresh clone holds (tracked + untracked, not ignored), symlinks kept as links."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        src, dst = REPO / rel, dest / rel
        if not (src.exists() or src.is_symlink()):
            continue  # deleted in the work tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    return dest


def _chart_outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if CHART_CLASS in str(o.get("data", {}).get("text/html", ""))]


@pytest.mark.parametrize("cwd", ["clone", "book"])
def test_notebook_runs_with_papermill_on_the_tiny_set(tmp_path, tiny_data_root, cwd):
    """`clone`: the design-card command `papermill train.ipynb out.ipynb -p frac 0.01 ...` from the
    root of a fresh clone's layout (its own matscale first on the path), with the runs landing in
    that clone's runs/; `book`: the book's page run from book/ with an explicit run root."""
    out = tmp_path / "out.ipynb"
    params = ["-p", "frac", "0.01", "-p", "data", str(tiny_data_root), "-p", "subsets", "rattled-1000,rattled-300-subsampled",
              "-p", "arch", "fcn", "-p", "size", "xs", "-p", "epochs", "3", "-p", "batch_size", "16", "-p", "lr", "0.003",
              "-p", "device", "cpu", "-p", "seed", "0" if cwd == "clone" else "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if cwd == "clone":
        root = fresh_clone_layout(tmp_path / "clone")
        shutil.rmtree(root / "runs")
        runs_root, notebook, workdir = root / "runs", "train.ipynb", root
        env["PYTHONPATH"] = str(root)
    else:
        runs_root, notebook, workdir = tmp_path / "runs", str(NOTEBOOK), REPO / "book"
        params += ["-p", "run_root", str(runs_root)]
    proc = subprocess.run([sys.executable, "-m", "papermill", notebook, str(out), *params, "--no-progress-bar",
                           "-k", "python3"], cwd=workdir, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Unable to parse" not in proc.stderr and "Passed unknown parameter" not in proc.stderr
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
    # every chart carries a static image next to its interactive HTML, and shows it inline too
    nb = nbformat.read(out, as_version=4)
    charts = _chart_outputs(nb)
    assert len(charts) >= 4
    for o in charts:
        assert {"image/png", "image/svg+xml"} & set(o["data"]), "a chart output has no static image"
        assert base64.b64decode(o["data"]["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
        assert STATIC_CLASS in o["data"]["text/html"]
    if cwd == "clone":  # nbconvert (in the dev environment) turns each chart into an image file
        done = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "markdown", str(out), "--output-dir",
                               str(tmp_path / "md")], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert len(list((tmp_path / "md").rglob("*.png"))) >= len(charts)
