"""Sweeps that really train (`python -m matscale train` children) on the tiny synthetic set.

- a sweep killed half-way (SIGKILL to its whole process group) and re-run completes only
  the missing points: finished run folders are left untouched;
- a deliberately failing point (a dataset that does not exist) is reported with its error
  and the other points still complete; the exit code says a point failed;
  this one runs through the SLURM executor with submitit's local executor (the same code
  path as on a cluster: one pickled array task per point, in child processes);
- the papermill runner executes a notebook per point (book/train.ipynb's convention).
The cheapest models (mean/linear baselines) on one small subset: the sweep machinery, not
the models, is under test, and each point still costs a Python + torch start-up.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from matscale.sweep import expand, main, run_sweep

ROOT = Path(__file__).resolve().parents[1]
BASE = {"subsets": "rattled-300", "frac": 1.0, "val_frac": 1.0, "epochs": 1, "batch_size": 8, "device": "cpu"}


def sweep_file(tmp_path: Path, data: Path, name: str, **spec) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": {**BASE, "data": str(data)}, **spec}, sort_keys=False))
    return path


def statuses(root: Path) -> dict[str, str]:
    out = {}
    for summary in root.glob("*/summary.json"):
        try:
            out[summary.parent.name] = json.loads(summary.read_text())["status"]
        except (ValueError, KeyError):  # being replaced right now
            pass
    return out


@pytest.mark.slow
def test_killed_sweep_reruns_only_missing_points(tmp_path, tiny_data_root):
    root = tmp_path / "runs"
    f = sweep_file(tmp_path, tiny_data_root, "kill", grid={"arch": ["mean"], "seed": [0, 1, 2]})
    cmd = [sys.executable, "-m", "matscale", "sweep", str(f), "--root", str(root), "--max-parallel", "1",
           "--no-progress"]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 240
            while time.time() < deadline and "completed" not in statuses(root).values() and proc.poll() is None:
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its training children, like a lost node
            proc.wait()
    before = statuses(root)
    finished = [run for run, s in before.items() if s == "completed"]
    first_log = (tmp_path / "first.log").read_text()
    assert len(finished) == 1, f"expected to kill after the first point: {before}\n{first_log}"
    mtimes = {run: (root / run / "summary.json").stat().st_mtime_ns for run in finished}

    cmd[cmd.index("--max-parallel") + 1] = "2"
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 points: completed 3 (skipped as already finished: 1)" in again.stdout
    record = pd.read_csv(root / "_sweeps" / "kill.csv").set_index("run_id")
    assert set(record["status"]) == {"completed"} and len(record) == 3
    assert record.loc[finished, "action"].tolist() == ["skip"]
    assert set(record.drop(index=finished)["action"]) <= {"new", "resume"}
    assert (record.drop(index=finished)["wall_s"] > 0).all()
    for run, mtime in mtimes.items():  # the finished run was not touched
        assert (root / run / "summary.json").stat().st_mtime_ns == mtime
    assert set(statuses(root).values()) == {"completed"} and len(statuses(root)) == 3

    # a third run has nothing left to do
    assert main(cmd[4:]) == 0
    assert set(pd.read_csv(root / "_sweeps" / "kill.csv")["action"]) == {"skip"}


@pytest.mark.slow
def test_failing_point_is_reported_and_others_complete_on_slurm_via_submitit_local(tmp_path, tiny_data_root,
                                                                                    capsys):
    """Through `--executor slurm --slurm-cluster local`: the array-job code path a cluster runs."""
    root = tmp_path / "runs"
    missing = tmp_path / "no-such-dataset"
    f = sweep_file(tmp_path, tiny_data_root, "fail", grid={"arch": ["mean", "linear"]},
                   points=[{"arch": "mean", "data": str(missing)}, {"arch": "fcn", "size": "colossal"}])
    argv = [str(f), "--root", str(root), "--executor", "slurm", "--slurm-cluster", "local", "--time", "10",
            "--cpus-per-task", "1"]
    code = main(argv)
    out = capsys.readouterr()
    assert code == 1, out.out + out.err
    df = pd.read_csv(root / "_sweeps" / "fail.csv")
    assert len(df) == 4
    ok = df[df["error"].isna()]
    assert sorted(ok["arch"]) == ["linear", "mean"] and set(ok["status"]) == {"completed"}
    bad = df[df["error"].notna()].set_index("arch")
    assert set(bad["status"]) == {"failed"}
    # a missing dataset has no fingerprint, so the point fails at planning (never started), saying why
    assert str(missing) in bad.loc["mean", "error"] and "does not exist" in bad.loc["mean", "error"]
    assert bad.loc["mean", "action"] == "invalid" and not Path(bad.loc["mean", "run_dir"]).exists()
    assert "unknown size 'colossal' for fcn" in bad.loc["fcn", "error"] and bad.loc["fcn", "action"] == "invalid"
    assert "4 points: completed 2, failed 2" in out.out
    assert "slurm (local): " in out.err and "timeout_min=10" in out.err
    jobs = root / "_sweeps" / "fail-submitit"
    assert len(list(jobs.glob("*_result.pkl"))) == 2, "one submitit array task per point to run"


def _mini_train_notebook(path: Path) -> Path:
    """A notebook following book/train.ipynb's convention (a papermill `parameters` cell of
    TrainConfig fields, then `train(..., resume=True)`), without its charts and evaluation."""
    import nbformat

    params = nbformat.v4.new_code_cell(
        'arch = "transformer"\nsize = None\ndata = None\nsubsets = None\nfrac = 0.01\nval_frac = 0.1\n'
        'epochs = 10\nbatch_size = 16\ndevice = "auto"\nrun_root = "runs"')
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "from matscale.config import TrainConfig\nfrom matscale.train import train\n"
        "config = TrainConfig(arch=arch, size=size, data=data, subsets=subsets, frac=frac, val_frac=val_frac,\n"
        "                     epochs=epochs, batch_size=batch_size, device=device, run_root=run_root)\n"
        "result = train(config, resume=True)\nprint(result.run_id, result.status)")
    nb = nbformat.v4.new_notebook(cells=[params, body])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_papermill_runner_executes_the_notebook_per_point(tmp_path, tiny_data_root):
    nb = _mini_train_notebook(tmp_path / "train.ipynb")
    configs = expand({"base": {**BASE, "data": str(tiny_data_root)},
                      "points": [{"arch": "mean"}, {"arch": "linear", "data": str(tmp_path / "missing")}]})
    root = tmp_path / "runs"
    df = run_sweep(configs, root=root, runner="papermill", notebook=nb, max_parallel=2, progress=False, name="nb")
    by_arch = df.set_index("arch")
    assert by_arch.loc["mean", "status"] == "completed", df.to_string()
    # a missing dataset has no fingerprint: the point fails at planning, naming the folder
    assert by_arch.loc["linear", "status"] == "failed" and by_arch.loc["linear", "action"] == "invalid"
    assert "does not exist" in by_arch.loc["linear", "error"] and "missing" in by_arch.loc["linear", "error"]
    run_id = by_arch.loc["mean", "run_id"]
    executed = root / "_sweeps" / "notebooks" / f"{run_id}.ipynb"
    assert f"{run_id} completed" in executed.read_text()  # the notebook trained the planned run
