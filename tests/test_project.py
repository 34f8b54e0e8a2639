"""Project-level invariants: the conda environment mirrors pyproject, set-up is documented."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert python == ["python=3.11"], "environment.yml must pin python=3.11 like requires-python"
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    got = {_name(r): r.replace(" ", "") for r in pip if not r.startswith("-e")}
    assert got == wanted, "environment.yml pip section differs from pyproject dependencies + dev extras"
    assert "-e ." in pip, "environment.yml must install the package itself"


def test_pins_that_keep_install_sane():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.0" in deps
    assert "fairchem-core==2.24.0" in deps
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    book = [Requirement(d) for d in deps if Requirement(d).name == "jupyter-book"]
    assert len(book) == 1 and book[0].specifier == SpecifierSet(">=1.0.4,<2")  # 2.x needs the network


def test_readme_documents_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_cli_lists_commands_and_rejects_unknown():
    ok = subprocess.run([sys.executable, "-m", "matscale", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "data" in ok.stdout and "train" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "matscale", "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "unknown command" in bad.stderr and "Traceback" not in bad.stderr


def test_notebooks_use_python3_kernel():
    import json

    for nb in (ROOT / "book").rglob("*.ipynb"):
        if ".ipynb_checkpoints" in nb.parts:
            continue
        meta = json.loads(nb.read_text())["metadata"]
        assert meta.get("kernelspec", {}).get("name") == "python3", f"{nb} must use kernelspec python3"
