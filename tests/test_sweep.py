"""Sweep runner without training: spec files, planning, executors, progress, SLURM parameters.

Children here are a few-line Python script standing in for `python -m matscale train`
(`point.command` is swapped), so the real process handling, logging, error capture, skipping
and retrying of `run_point` are exercised in well under a second per point. The real training
CLI is driven in tests/test_sweep_train.py.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from matscale.config import TrainConfig
from matscale.errors import ConfigError
from matscale.sweep import expand, load, plan, run_sweep, write_point_config
from matscale.sweep import point as point_mod
from matscale.sweep.executors import LocalExecutor, SlurmExecutor, submitit_parameters
from matscale.sweep.point import Point, action_for, run_point
from matscale.sweep.progress import Progress, summary_table

ROOT = Path(__file__).resolve().parents[1]

# Stand-in for the training CLI: writes summary.json like the real loop does. lr picks the
# outcome: 0.5 -> fails with an error in summary.json, 0.25 -> prints `error: ...` and exits 2.
FAKE_TRAIN = r"""
import json, os, sys, time
run_dir, lr, epochs, action = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(run_dir, exist_ok=True)
def summary(**kw):
    tmp = os.path.join(run_dir, ".summary.tmp")
    with open(tmp, "w") as fh:
        json.dump(kw, fh)
    os.replace(tmp, os.path.join(run_dir, "summary.json"))
summary(status="running")
time.sleep(0.05 * epochs)
with open(os.path.join(run_dir, "attempts.txt"), "a") as fh:
    fh.write(action + "\n")
if lr == 0.5:
    print("Traceback (most recent call last): ...")
    summary(status="failed", error="FloatingPointError: loss is nan at step 3")
    sys.exit(1)
if lr == 0.25:
    print("error: data folder /nope does not exist; generate it first")
    sys.exit(2)
summary(status="completed", best_val_loss=1.0)
"""


def fake_command(point: Point, action: str) -> list[str]:
    c = point.config
    return [sys.executable, "-c", FAKE_TRAIN, str(point.run_dir), repr(c["lr"]), str(c["epochs"]), action]


@pytest.fixture
def fake_train(monkeypatch):
    monkeypatch.setattr(point_mod, "command", fake_command)


def attempts(run_dir) -> list[str]:
    path = Path(run_dir) / "attempts.txt"
    return path.read_text().split() if path.exists() else []


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# -- spec files ---------------------------------------------------------------------------------
def test_per_architecture_grid_expands_to_the_product(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("""
base: {epochs: 2, batch_size: 8}
grid:
  arch:
    fcn: {size: [xs, s]}
    transformer: {size: [xs], lr: [1e-3, 3e-4]}
    linear:
  frac: [0.1, 1]
  seed: [0, 1]
points:
  - {arch: mean, frac: 1.0}
""")
    configs = expand(f)
    combos = {(c.arch, c.size, c.frac, c.seed, c.lr) for c in configs}
    assert len(configs) == len(combos) == (2 + 2 + 1) * 2 * 2 + 1
    assert ("fcn", "s", 0.1, 1, 1e-3) in combos
    assert ("transformer", "xs", 1.0, 0, 3e-4) in combos  # YAML's "3e-4" string became a float
    assert ("linear", None, 0.1, 0, 1e-3) in combos
    assert ("mean", None, 1.0, 0, 1e-3) in combos
    assert {c.size for c in configs if c.arch == "transformer"} == {"xs"}
    assert all(c.epochs == 2 and c.batch_size == 8 for c in configs)


def test_toml_yaml_and_dict_give_the_same_points(tmp_path):
    spec = {"base": {"arch": "fcn", "epochs": 1}, "grid": {"size": ["xs", "s"], "lr": [0.001, 0.003]}}
    (tmp_path / "s.toml").write_text('[base]\narch = "fcn"\nepochs = 1\n[grid]\nsize = ["xs", "s"]\n'
                                     "lr = [1e-3, 3e-3]\n")
    from_toml = expand(tmp_path / "s.toml")
    assert from_toml == expand(write_yaml(tmp_path / "s.yaml", spec)) == expand(spec)
    assert len(from_toml) == 4
    assert load(tmp_path / "s.toml").name == "s"


def test_coerced_values_give_the_train_cli_run_id(tmp_path):
    """frac: 1 (int) and lr: '1e-3' (YAML string) must hash like the CLI's floats; the child
    reads the point's config file (`train --config point.json`) back to the same run id."""
    (config,) = expand({"base": {"arch": "fcn", "size": "xs", "frac": 1, "lr": "1e-3", "subsets": "rattled-300"}})
    assert config == TrainConfig(arch="fcn", size="xs", frac=1.0, lr=1e-3, subsets=("rattled-300",))
    from matscale.train.cli import build_parser, config_from_args

    resolved = config.replace(run_root=str(tmp_path)).validate(check_device=False)
    path = write_point_config(Point(config=resolved.to_dict(), run_id=resolved.run_id()))
    assert path == tmp_path / "_sweeps" / "points" / f"{resolved.run_id()}.json"
    again = config_from_args(build_parser().parse_args(["--config", str(path)]))
    assert again == resolved and again.run_id() == config.run_id()
    flags = config_from_args(build_parser().parse_args(["--arch", "fcn", "--size", "xs", "--frac", "1",
                                                        "--lr", "1e-3", "--subsets", "rattled-300"]))
    assert flags.run_id() == config.run_id()


@pytest.mark.parametrize("spec, message", [
    ({"base": {"epoch": 1}}, "'epoch' is not a training setting"),
    ({"grid": {"archs": ["fcn"]}}, "'archs' is not a training setting"),
    ({"points": [{"arch": "fcn", "sizes": "xs"}]}, "'sizes' is not a training setting"),
    ({"grid": {"frac": ["lots"]}}, "frac must be a number"),
    ({"base": {"epochs": 1.5}}, "epochs must be a whole number"),
    ({"base": {"rotation_augment": "yes"}}, "must be true or false"),
    ({"grid": {"frac": []}}, "lists no values"),
    ({"grid": {"frac": [0.1], "arch": {"fcn": {"frac": [1.0]}}}}, "frac is set twice"),
    ({"grid": {"arch": {"fcn": ["xs"]}}}, "must be a mapping of settings"),
    ({"bases": {}}, "unknown top-level key"),
    ({"local": {"max_parallel": 0}}, "local.max_parallel must be a whole number"),
    ({"local": {"cores": 2}}, "unknown local setting"),
    ({"runner": "docker"}, "runner must be one of"),
    ({"points": {"arch": "fcn"}}, "points must be a list"),
])
def test_bad_sweep_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=message):
        load(spec)


def test_unreadable_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("grid: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(tmp_path / "bad.yaml")
    (tmp_path / "s.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"must end in \.yaml"):
        load(tmp_path / "s.json")


@pytest.mark.parametrize("path", sorted((ROOT / "book" / "sweeps").glob("*.*ml")), ids=lambda p: p.name)
def test_example_sweep_files_are_valid(path):
    sweep = load(path)
    assert sweep.configs
    for config in sweep.configs:
        config.validate(check_device=False)  # every size exists on its architecture's ladder
    if sweep.slurm:
        submitit_parameters(sweep.slurm)


# -- planning -------------------------------------------------------------------------------------
def _summary(run_dir: Path, status: str) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps({"status": status}))


def test_plan_skips_finished_resumes_interrupted_and_retries_failed(tmp_path):
    configs = expand({"base": {"arch": "mean"}, "grid": {"seed": [0, 1, 2, 3, 4]},
                      "points": [{"arch": "fcn", "size": "huge"}]})
    ids = [c.validate(check_device=False).run_id() for c in configs[:5]]
    for run_id, status in zip(ids, ["completed", "stopped_early", "failed", "running"]):
        _summary(tmp_path / run_id, status)
    points, rows = plan(configs, tmp_path)
    assert [r["action"] for r in rows] == ["skip", "skip", "invalid"]
    assert "unknown size 'huge' for fcn" in rows[2]["error"] and rows[2]["status"] == "failed"
    assert [p.run_id for p in points] == ids[2:]
    assert [action_for(point_mod.state(p.run_dir)[0], p.run_dir.exists()) for p in points] == \
        ["resume", "resume", "new"]
    assert action_for("failed", True, restart_failed=True) == "restart"
    assert all(Path(p.config["run_root"]) == tmp_path and p.config["size"] == "base" for p in points)


def test_points_with_the_same_run_id_run_once(tmp_path):
    # size unset resolves to the default size: the same run as naming it
    points, rows = plan(expand({"base": {"arch": "fcn"}, "grid": {"size": [None, "s"]}}), tmp_path)
    assert len(points) == 1 and not rows


def test_train_command_resumes_or_restarts():
    p = Point(config=TrainConfig(arch="fcn", size="xs", run_root="/r").to_dict(), run_id="x")
    assert point_mod.command(p, "new")[1:6] == ["-m", "matscale", "train", "--config", "/r/_sweeps/points/x.json"]
    assert "--resume" in point_mod.command(p, "resume") and "--force" in point_mod.command(p, "restart")
    assert not {"--resume", "--force"} & set(point_mod.command(p, "new"))
    nb = point_mod.command(Point(config=p.config, run_id="x", runner="papermill",
                                 notebook_params=("arch", "lr", "other")), "resume")
    assert nb[1:3] == ["-m", "papermill"] and nb[3].endswith("book/train.ipynb")
    assert nb[4] == "/r/_sweeps/notebooks/x.ipynb"
    assert [nb[i + 1] for i, a in enumerate(nb) if a == "-y"] == ['{"arch": "fcn"}', '{"lr": 0.001}']


def test_papermill_runner_refuses_settings_the_notebook_cannot_take(tmp_path):
    import nbformat

    params = point_mod.notebook_parameters(ROOT / "book" / "train.ipynb")
    assert {"arch", "size", "frac", "seed", "lr", "epochs", "run_root"} <= set(params)
    assert set(params) <= set(TrainConfig.field_names()), "train.ipynb parameters must be TrainConfig fields"
    fine = expand({"grid": {"arch": ["fcn"], "size": ["xs", "s"], "frac": [0.1, 1.0]}})
    points, _ = plan(fine, tmp_path, runner="papermill")
    assert len(points) == 4 and points[0].notebook_params == params

    cell = nbformat.v4.new_code_cell("arch = 'fcn'\nsize: str = 's'\nfrac = 0.1  # share\nx.y = 3")
    cell.metadata["tags"] = ["parameters"]
    nb = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), nb)
    assert point_mod.notebook_parameters(nb) == ("arch", "size", "frac")
    assert len(plan(fine, tmp_path, runner="papermill", notebook=nb)[0]) == 4
    with pytest.raises(ConfigError, match="has no parameter for subsets, weight_decay"):
        plan(expand({"base": {"subsets": "rattled-300", "weight_decay": 0.1}}), tmp_path, runner="papermill",
             notebook=nb)
    with pytest.raises(ConfigError, match="restart-failed needs --runner cli"):
        plan(fine, tmp_path, runner="papermill", restart_failed=True)
    with pytest.raises(ConfigError, match="does not exist"):
        plan(fine, tmp_path, runner="papermill", notebook=tmp_path / "nope.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1")]), nb)
    with pytest.raises(ConfigError, match="no cell tagged 'parameters'"):
        plan(fine, tmp_path, runner="papermill", notebook=nb)


# -- running (fake children) ----------------------------------------------------------------------
def test_failing_points_are_recorded_and_do_not_stop_the_others(tmp_path, fake_train):
    configs = expand({"base": {"arch": "mean", "epochs": 1},
                      "grid": {"lr": [1e-3, 0.5, 0.25], "seed": [0, 1]},
                      "points": [{"arch": "fcn", "size": "huge"}]})
    df = run_sweep(configs, max_parallel=2, root=tmp_path, progress=False, name="t")
    assert len(df) == 7 and list(df.columns[:3]) == ["run_id", "arch", "size"]
    status = dict(zip(df["lr"].astype(str) + df["arch"], df["status"]))
    assert status == {"0.001mean": "completed", "0.5mean": "failed", "0.25mean": "failed", "0.001fcn": "failed"}
    errors = df.set_index("lr")["error"]
    assert (df.loc[df.lr == 0.5, "error"] == "FloatingPointError: loss is nan at step 3").all()
    assert df.loc[df.lr == 0.25, "error"].str.fullmatch(
        r"data folder /nope does not exist; generate it first \(exit code 2\)").all()
    assert "unknown size 'huge'" in df.loc[df.arch == "fcn", "error"].item()
    assert errors.notna().sum() == 5 and (df.loc[df.status == "completed", "wall_s"] > 0).all()
    for run_dir in df.loc[df.arch == "mean", "run_dir"]:
        assert attempts(run_dir) == ["new"]
        log = tmp_path / "_sweeps" / "logs" / f"{Path(run_dir).name}.log"
        assert log.read_text().count(" -c ") == 1  # the logged command line
    record = pd.read_csv(tmp_path / "_sweeps" / "t.csv")
    assert sorted(record["status"]) == sorted(df["status"])

    # Re-running skips finished points and retries (resumes) every failed one.
    again = run_sweep(configs, max_parallel=2, root=tmp_path, progress=False, name="t")
    actions = dict(zip(again["run_id"], again["action"]))
    for _, row in df.iterrows():
        if row["status"] == "completed":
            assert actions[row["run_id"]] == "skip" and attempts(row["run_dir"]) == ["new"]
        elif row["arch"] == "mean":
            assert actions[row["run_id"]] == "resume" and attempts(row["run_dir"]) == ["new", "resume"]
    assert (again["status"] == df.set_index("run_id").loc[again["run_id"], "status"].values).all()
    restarted = run_sweep(configs, root=tmp_path, progress=False, restart_failed=True, name="t")
    by_lr = restarted[restarted.arch == "mean"].groupby("lr")["action"].agg(set).to_dict()
    # on disk, lr 0.5 runs say failed (start over); lr 0.25 ones died before saying so (resume)
    assert by_lr == {0.001: {"skip"}, 0.25: {"resume"}, 0.5: {"restart"}}


def test_errors_of_earlier_attempts_are_not_reported_again(tmp_path, fake_train):
    (config,) = expand({"base": {"arch": "mean", "lr": 0.25}})
    (p,), _ = plan([config], tmp_path)
    run_dir = tmp_path / p.run_id
    _summary(run_dir, "failed")
    (run_dir / "summary.json").write_text(json.dumps({"status": "failed", "error": "old error"}))
    import os
    os.utime(run_dir / "summary.json", (0, 0))  # written long before this attempt
    p.log.parent.mkdir(parents=True)
    p.log.write_text("error: an old message\n")
    result = run_point(p)
    assert result["status"] == "failed" and result["action"] == "resume"
    assert result["error"] == "data folder /nope does not exist; generate it first (exit code 2)"


def test_a_crashing_point_function_is_a_failed_point(tmp_path):
    configs = expand({"base": {"arch": "mean"}, "grid": {"seed": [0, 1, 2]}})

    def run_fn(p: Point):
        if p.config["seed"] == 1:
            raise RuntimeError("worker exploded")
        return {"run_id": p.run_id, "status": "completed", "error": None, "wall_s": 0.1, "action": "new"}

    df = run_sweep(configs, root=tmp_path, progress=False, run_fn=run_fn)
    assert list(df["status"]) == ["completed", "failed", "completed"]
    assert df["error"][1] == "RuntimeError: worker exploded"


def test_local_pool_is_sized_to_the_machine_and_spreads_gpus(tmp_path, monkeypatch):
    monkeypatch.setattr("matscale.sweep.executors.available_cpus", lambda: 8)
    assert (LocalExecutor().parallel, LocalExecutor().threads) == (8, 1)
    assert (LocalExecutor(threads_per_run=4).parallel, LocalExecutor(max_parallel=2).threads) == (2, 4)
    assert LocalExecutor(gpus=["0", "3"]).parallel == 2
    with pytest.raises(ConfigError, match="max_parallel must be"):
        LocalExecutor(max_parallel=0)

    seen = []

    def run_fn(p: Point):
        seen.append((p.env["CUDA_VISIBLE_DEVICES"], p.threads))
        return {"run_id": p.run_id, "status": "completed", "error": None, "wall_s": 0.0, "action": "new"}

    configs = expand({"base": {"arch": "mean"}, "grid": {"seed": [0, 1, 2, 3]}})
    run_sweep(configs, LocalExecutor(gpus=["0", "3"], threads_per_run=2), root=tmp_path, progress=False,
              run_fn=run_fn)
    assert len(seen) == 4 and {g for g, _ in seen} <= {"0", "3"} and {t for _, t in seen} == {2}


def test_progress_counts_and_eta(capsys):
    bar = Progress(total=10, skipped=2, parallel=2, enabled=False)
    assert bar.line() == "done 0 | failed 0 | skipped 2 | remaining 8 | ETA ?"
    bar.update({"run_id": "a", "status": "completed", "error": None, "wall_s": 60.0, "action": "new"})
    bar.update({"run_id": "b", "status": "failed", "error": "x", "wall_s": 120.0, "action": "new"})
    # 6 left at 90 s mean, 2 at a time -> 3 waves -> 270 s
    assert bar.line() == "done 1 | failed 1 | skipped 2 | remaining 6 | ETA 4m30s"
    bar.update({"run_id": "c", "status": "completed", "error": None, "wall_s": 0.0, "action": "skip"})
    assert bar.remaining == 5 and bar.skipped == 3
    bar.close()
    table = summary_table(pd.DataFrame([
        {"run_id": "a", "action": "new", "status": "completed", "wall_s": 61.0, "error": None},
        {"run_id": "b", "action": "skip", "status": "completed", "wall_s": 0.0, "error": None},
        {"run_id": "c", "action": "new", "status": "failed", "wall_s": 5.0, "error": "boom " * 30}]))
    assert "1m01s" in table and "…" in table
    assert table.splitlines()[-1] == "3 points: completed 2, failed 1 (skipped as already finished: 1)"


def test_progress_bar_prints_one_line_per_point(tmp_path, fake_train, capsys):
    configs = expand({"base": {"arch": "mean", "epochs": 1}, "grid": {"lr": [1e-3, 0.25]}})
    run_sweep(configs, max_parallel=1, root=tmp_path, name="bar")
    err = capsys.readouterr().err
    assert "bar: 2 point(s), 2 to run, 0 already finished; local: 1 run(s) at a time" in err
    assert "completed     mean-base-frac0.01-seed0" in err
    assert "failed        mean-base-frac0.01-seed0" in err and "(exit code 2)" in err
    assert "done 1 | failed 1 | skipped 0 | remaining 0 | ETA 0s" in err


# -- SLURM through submitit -------------------------------------------------------------------------
def test_slurm_settings_reach_the_sbatch_script(tmp_path, monkeypatch):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{__import__('os').environ['PATH']}")
    ex = SlurmExecutor({"partition": "gpu-long", "time": 90, "gpus_per_node": 1, "cpus_per_task": 6,
                        "mem_gb": 24, "array_parallelism": 4, "account": "proj7", "qos": "high",
                        "additional_parameters": {"constraint": "a100"}})
    assert ex.threads == 6 and ex.parallel == 4
    script = ex.executor(tmp_path / "jobs")._executor._make_submission_file_text("python -c pass", "uid")
    for line in ["--partition=gpu-long", "--time=90", "--gpus-per-node=1", "--cpus-per-task=6", "--mem=24GB",
                 "--account=proj7", "--qos=high", "--constraint=a100"]:
        assert f"#SBATCH {line}\n" in script
    assert "--time=60" in SlurmExecutor({}).executor(tmp_path / "j2")._executor._make_submission_file_text(
        "x", "u")  # default time limit: 60 minutes
    with pytest.raises(ConfigError, match="Unknown argument 'colour'"):
        SlurmExecutor({"colour": "red"}).executor(tmp_path / "j3")
    with pytest.raises(ConfigError, match="slurm time must be a whole number"):
        SlurmExecutor({"time": "1h"})
    with pytest.raises(ConfigError, match="cluster must be one of"):
        SlurmExecutor({"cluster": "pbs"})


def test_no_slurm_here_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun on PATH
    with pytest.raises(ConfigError, match="--slurm-cluster local"):
        SlurmExecutor({}).executor(tmp_path / "jobs")


def test_slurm_debug_cluster_runs_the_same_points(tmp_path, fake_train):
    configs = expand({"base": {"arch": "mean", "epochs": 1}, "grid": {"lr": [1e-3, 0.5]}})
    df = run_sweep(configs, "slurm", root=tmp_path, slurm={"cluster": "debug", "time": 5}, progress=False,
                   name="dbg")
    assert list(df["status"]) == ["completed", "failed"]
    assert df["error"][1] == "FloatingPointError: loss is nan at step 3"
    assert (tmp_path / "_sweeps" / "dbg-submitit").is_dir()
    again = run_sweep(configs, "slurm", root=tmp_path, slurm={"cluster": "debug"}, progress=False, name="dbg")
    assert list(again["action"]) == ["skip", "resume"]


# -- interrupting and the command line ---------------------------------------------------------------
def test_an_interrupted_sweep_stops_its_children_and_starts_nothing_new(tmp_path, fake_train):
    import time

    configs = expand({"base": {"arch": "mean", "epochs": 400},  # fake children sleep 20 s, but the first 0.05 s
                      "points": [{"epochs": 1}, {"seed": 0}, {"seed": 1}, {"seed": 2}]})
    points, _ = plan(configs, tmp_path)
    seen = []

    def on_result(result):
        seen.append(result)
        raise KeyboardInterrupt  # Ctrl-C (or SIGTERM, turned into this) while the sweep waits

    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        LocalExecutor(max_parallel=2).run(points, on_result)
    assert time.perf_counter() - t0 < 10, "the running 20 s child was not stopped"
    assert [r["status"] for r in seen] == ["completed"]
    slow = [p.run_dir for p in points[1:]]
    deadline = time.time() + 10
    while point_mod._LIVE and time.time() < deadline:  # the stopped child's thread winds down
        time.sleep(0.05)
    assert not point_mod._LIVE
    assert json.loads((slow[0] / "summary.json").read_text())["status"] == "running"  # killed mid-run
    assert attempts(slow[0]) == attempts(slow[1]) == []  # the second may have started: stopped too
    assert not slow[2].exists()  # queued points never start


def test_a_point_another_process_is_running_waits_for_it_and_is_not_started_twice(tmp_path, fake_train,
                                                                                   monkeypatch):
    import threading
    import time

    from matscale import locks

    monkeypatch.setattr(point_mod, "BUSY_POLL_S", 0.05)
    (config,) = expand({"base": {"arch": "mean", "epochs": 1}})
    (p,), _ = plan([config], tmp_path)
    fd, _ = locks.acquire(tmp_path, p.run_id)  # another sweep / `matscale train` holds the run's lock
    out: dict = {}
    worker = threading.Thread(target=lambda: out.update(run_point(p)))
    worker.start()
    time.sleep(0.4)
    assert worker.is_alive() and not p.run_dir.exists()  # waiting, not started, not recorded as failed
    locks.release(fd)
    worker.join(20)
    assert out["status"] == "completed" and attempts(p.run_dir) == ["new"]
    assert locks.status(tmp_path, p.run_id) is None  # the child's inherited lock is gone with it
    stop = threading.Event()
    fd, _ = locks.acquire(tmp_path, p.run_id)
    stop.set()  # a stopped sweep gives up waiting at once
    assert run_point(p, stop=stop)["action"] == "busy"
    locks.release(fd)


def test_sigterm_becomes_an_interrupt_only_inside_a_sweep():
    import signal

    from matscale.lifeline import terminate_as_interrupt  # what the sweep runs its executor under

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # one block each: after the first signal, more are ignored
        with terminate_as_interrupt():
            with pytest.raises(KeyboardInterrupt, match=signal.Signals(sig).name):
                signal.getsignal(sig)(sig, None)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before


def test_cli_dry_run_lists_points_and_errors_exit_2(tmp_path, capsys):
    from matscale.cli import main as matscale_main

    f = write_yaml(tmp_path / "s.yaml", {"base": {"arch": "mean"}, "grid": {"seed": [0, 1]},
                                         "points": [{"arch": "fcn", "size": "huge"}]})
    _summary(tmp_path / "runs" / expand(f)[0].validate(check_device=False).run_id(), "completed")
    code = matscale_main(["sweep", str(f), "--root", str(tmp_path / "runs"), "--dry-run", "--set", "epochs=3",
                          "--max-parallel", "2"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1  # the invalid point counts as failed
    assert out[0] == "s: 3 point(s); local: 2 run(s) at a time, 1 thread(s) each"
    # --set changed the settings, so the finished epochs=10 run is not this sweep's point
    assert [ln.split()[0] for ln in out[1:]] == ["invalid", "new", "new"]
    assert matscale_main(["sweep", str(f), "--root", str(tmp_path / "runs"), "--dry-run"]) == 1
    assert [ln.split()[0] for ln in capsys.readouterr().out.splitlines()[1:]] == ["skip", "invalid", "new"]
    assert matscale_main(["sweep", str(f), "--set", "epochs=many"]) == 2
    assert "error: " in capsys.readouterr().err
    assert matscale_main(["sweep", str(f), "--executor", "slurm", "--slurm-param", "colour=red",
                          "--root", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and ("colour" in err or "srun" in err)
