"""The book's study pages: each notebook is papermill-parameterised and runs, from book/ (as in the
book build), against the synthetic study of tests/conftest.py — where one planned run is missing
and one failed — and the dataset page against the tiny dataset. The executed pages must show
their fits (with ± and intervals), save their figures, and contain no traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
STUDY_PAGES = ["study", "training_dynamics", "data_scaling", "parameter_scaling", "compute_scaling",
               "architectures", "joint_scaling", "equivariance"]
# what each executed page must contain (its key results)
EXPECT = {
    "study": ["missing", "failed", "study_grid"],
    "training_dynamics": ["loss and its parts", "errors in physical units", "linear 60"],
    "data_scaling": ["power_floor", "AICc", "95% CI (profile likelihood)", "±"],
    "parameter_scaling": ["power_floor", "AICc", "95% CI (profile likelihood)"],
    "compute_scaling": ["bootstrap percentile", "gamma", "points on the overall front"],
    "architectures": ["compute exponent γ", "joint α (N)", "±", "exponents"],
    "joint_scaling": ["not a grid", "inside", "rel_error"],  # the synthetic study is a cross
    "equivariance": ["neither a checkpoint nor a stored measurement", "median forces_rel", "equivariance_forces"],
    "dataset": ["train structures", "energy per atom", "pressure (GPa)", "rattled-relax"],
}


# what must be in each executed page's outputs (not only in its code)
EXPECT_OUTPUT = {
    "architectures": ["force L2MAE (meV/Å)", "linear"],
}


def _outputs(nb) -> str:
    texts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            texts.append(o.get("text", "") if o.output_type == "stream" else "")
            texts += [str(v) for v in o.get("data", {}).values()]
    return "\n".join(texts)


def _run(name: str, tmp_path: Path, params: list[str]) -> str:
    out = tmp_path / f"{name}.ipynb"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MATSCALE_FIGURES_DIR": str(tmp_path / "figures")}
    proc = subprocess.run([sys.executable, "-m", "papermill", str(BOOK / f"{name}.ipynb"), str(out), *params,
                           "--no-progress-bar", "-k", "python3"], cwd=BOOK, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    nb = nbformat.read(out, as_version=4)
    shown = _outputs(nb)
    for needle in EXPECT_OUTPUT.get(name, []):
        assert needle in shown, f"{name}: {needle!r} is not in any output"
    texts = []
    for cell in nb.cells:  # the page as a reader sees it: sources and every output's text
        texts.append(cell.source)
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                texts.append(o.get("text", ""))
            else:
                texts += [str(v) for v in o.get("data", {}).values()] + [o.get("evalue", "")] + o.get("traceback", [])
    return "\n".join(texts)


def _check(name: str, text: str, tmp_path: Path) -> None:
    assert "Traceback" not in text
    figures = list((tmp_path / "figures").glob("*.svg"))
    assert figures, f"{name}: no figure saved"
    text += "\n".join(f.stem for f in figures)  # figure names live in matscale.study.pages
    for needle in EXPECT[name]:
        assert needle in text, f"{name}: {needle!r} not on the page"


@pytest.mark.slow  # a papermill kernel per page: ~20-30 s each on 2 cores
@pytest.mark.parametrize("name", STUDY_PAGES)
def test_study_page_runs_on_the_synthetic_study(name, synthetic_study, tmp_path):
    path, root = synthetic_study
    text = _run(name, tmp_path, ["-p", "study", str(path), "-p", "runs_root", str(root)])
    _check(name, text, tmp_path)


def test_dataset_page_runs_on_the_tiny_dataset(tiny_data_root, tmp_path):
    text = _run("dataset", tmp_path, ["-p", "data", str(tiny_data_root), "-p", "bins", "10"])
    _check("dataset", text, tmp_path)


def test_a_page_with_too_few_runs_says_so_instead_of_failing(synthetic_study, tmp_path):
    """Only one architecture's data series ran: pages explain the missing fits."""
    path, root = synthetic_study
    partial = tmp_path / "runs"
    partial.mkdir()
    for run in root.iterdir():
        if run.name.startswith("schnet-xs-frac0.01") or run.name.startswith("schnet-xs-frac0.02"):
            (partial / run.name).symlink_to(run)
    text = _run("data_scaling", tmp_path, ["-p", "study", str(path), "-p", "runs_root", str(partial),
                                           "-y", "archs: [schnet]"])
    assert "no fit" in text and "a power law needs at least 3" in text and "Traceback" not in text


def test_every_study_page_is_parameterised_and_in_the_toc():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    listed = [c["file"] for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}])
              for c in part["chapters"]]
    for name in STUDY_PAGES + ["dataset"]:
        assert f"book/{name}" in listed, name
        nb = nbformat.read(BOOK / f"{name}.ipynb", as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(cells) == 1, name
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "matscale.book.setup()" in first_code.source, name
        values: dict = {}
        exec(cells[0].source, {}, values)
        if name != "dataset":
            assert values == {"study": "default", "runs_root": "runs", "archs": None}, name
    for entry in listed:
        assert any((REPO / f"{entry}{suffix}").is_file() for suffix in (".md", ".ipynb")), entry
    assert "book/limitations" in listed
