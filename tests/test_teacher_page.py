"""The book's "Teacher labels" page runs from book/ (as in the book build) on the committed teacher
summary and the committed runs of both studies, and shows the comparison of exponents; the
dataset page's element map reads the committed summary (checked by test_study_notebooks)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"


def test_teacher_page_runs_on_the_committed_summary_and_runs(tmp_path):
    out = tmp_path / "teacher.ipynb"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MATSCALE_FIGURES_DIR": str(tmp_path / "figures")}
    proc = subprocess.run([sys.executable, "-m", "papermill", str(BOOK / "teacher.ipynb"), str(out),
                           "--no-progress-bar", "-k", "python3"], cwd=BOOK, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    nb = nbformat.read(out, as_version=4)
    shown = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            shown.append(o.get("text", "") if o.output_type == "stream" else "")
            shown += [str(v) for v in o.get("data", {}).values()] + o.get("traceback", [])
    text = "\n".join(shown)
    assert "Traceback" not in text
    assert "omat24-teacher-v1" in text and "elements" in text and "rattled-relax" in text
    assert "CHGNet teacher: exponent" in text and "EMT: exponent" in text and "α =" in text
    figures = {p.stem for p in (tmp_path / "figures").glob("*.svg")}
    assert "teacher_elements" in figures and any(f.startswith("teacher_data_scaling_") for f in figures)


def test_teacher_page_is_in_the_toc_with_python3_kernel():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    listed = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert "book/teacher" in listed
    nb = nbformat.read(BOOK / "teacher.ipynb", as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
