"""Issue 15: no silent crash, no silent wrong data, no run left "running", one lock per run.

One test (or a few) per item of the fault-injection report; bench/fault_matrix.py reruns the
whole matrix as one script. Tiny data: three subsets of the session's tiny synthetic set.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matscale.cli import main as cli_main
from matscale.config import TrainConfig
from matscale.errors import ConfigError, DataError, FitError

SUBSETS = "rattled-1000,rattled-500-subsampled,rattled-300"
FLAGS = ["--arch", "fcn", "--size", "xs", "--subsets", SUBSETS, "--frac", "1", "--val-frac", "1",
         "--batch-size", "8", "--device", "cpu", "--quiet"]


def _env(**extra):
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def _cli(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "matscale", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env or _env())


def _one_error_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("warning: ")]  # guards' notes
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in text, text[-2000:]
    return lines[0]


def _run_id(data, epochs, **more) -> str:
    return TrainConfig(arch="fcn", size="xs", subsets=tuple(SUBSETS.split(",")), frac=1.0, val_frac=1.0,
                       epochs=epochs, batch_size=8, data=str(data), **more).run_id()


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie nobody reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def _wait(predicate, timeout=120.0, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_data_root):
    """A writable copy of three subsets (both splits) of the tiny set."""
    dst = tmp_path_factory.mktemp("rel") / "ds"
    for split in ("train", "val"):
        for subset in SUBSETS.split(","):
            shutil.copytree(Path(tiny_data_root) / split / subset, dst / split / subset)
    return dst


@pytest.fixture
def data_copy(data, tmp_path):
    dst = tmp_path / "ds"
    shutil.copytree(data, dst)
    return dst


# -- 1. truncated LMDB -----------------------------------------------------------------------------
def test_truncated_lmdb_is_a_clear_error_not_sigbus(data_copy, tmp_path):
    victim = data_copy / "train" / "rattled-300" / "data.aselmdb"
    os.truncate(victim, victim.stat().st_size // 2)
    stats = _cli("data", "stats", data_copy)
    assert stats.returncode == 2, (stats.returncode, stats.stderr[-2000:])
    line = _one_error_line(stats.stderr)
    assert str(victim) in line and "truncated" in line and ("regenerate" in line or "re-download" in line)
    root = tmp_path / "runs"
    trained = _cli("train", *FLAGS, "--epochs", "1", "--data", data_copy, "--run-root", root)
    assert trained.returncode == 2 and str(victim) in _one_error_line(trained.stderr)
    summary = json.loads((root / _run_id(data_copy, 1) / "summary.json").read_text())
    assert summary["status"] == "failed" and "truncated" in summary["error"]  # not left "running"


# -- 2. zero atoms ----------------------------------------------------------------------------------
def _write_db(path: Path, atoms_list):
    import ase.db

    path.parent.mkdir(parents=True, exist_ok=True)
    db = ase.db.connect(str(path), type="aselmdb", use_lock_file=False)
    for atoms in atoms_list:
        db.write(atoms, data={"sid": atoms.info.get("sid", "x"), "parent_id": "p"})
    db.close() if hasattr(db, "close") else None


def _labelled(n_atoms: int, energy: float = -3.0, sid: str = "s"):
    from ase import Atoms
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = bulk("Cu", "fcc", a=3.6) * (n_atoms, 1, 1) if n_atoms else Atoms(cell=np.eye(3) * 3.6, pbc=True)
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((n_atoms, 3)), stress=np.zeros(6))
    atoms.info["sid"] = sid
    return atoms


def test_zero_atom_row_names_file_and_row(tmp_path):
    from matscale.data.reader import open_split
    from matscale.train.normalization import fit_normalization

    path = tmp_path / "ds" / "train" / "rattled-300" / "data.aselmdb"
    _write_db(path, [_labelled(2, sid="a"), _labelled(0, 0.0, sid="empty"), _labelled(1, sid="b")])
    with pytest.raises(DataError) as e:
        open_split(tmp_path / "ds", "train").validate()
    assert f"{path} row 2" in str(e.value) and "zero atoms" in str(e.value)
    with pytest.raises(DataError, match="structure empty has zero atoms"):  # in-memory data too
        fit_normalization([_labelled(2), _labelled(0, 0.0, sid="empty")])


# -- 3. wrong natoms in metadata.npz -----------------------------------------------------------------
def test_metadata_with_wrong_natoms_is_detected(data_copy):
    from matscale.data.reader import open_split

    meta = data_copy / "train" / "rattled-300" / "metadata.npz"
    natoms = np.load(meta)["natoms"]
    np.savez(meta, natoms=natoms + 1)  # right length, wrong counts: caught by the sample at open
    with pytest.raises(DataError) as e:
        open_split(data_copy, "train")
    assert str(meta) in str(e.value) and "delete it" in str(e.value)
    wrong_one = natoms.copy()
    wrong_one[1] += 7  # one row the open-time sample skips: caught when that row is decoded
    np.savez(meta, natoms=wrong_one)
    ds = open_split(data_copy, "train", subsets="rattled-300")
    with pytest.raises(DataError, match="metadata.npz says row"):
        ds.validate()


# -- 4. fits that claim certainty they do not have ---------------------------------------------------
def test_one_run_frontier_bootstrap_is_refused():
    from matscale.fit.frontier import fit_frontier

    c = np.geomspace(1e10, 1e14, 12)
    curves = pd.DataFrame({"flops": c, "loss": 0.2 + 5 * (c / 1e10) ** -0.2, "run": "only"})
    with pytest.raises(FitError, match="holds 1 run"):
        fit_frontier(curves, bootstrap=50)
    assert fit_frontier(curves).ci_method == "profile likelihood"  # without the bootstrap it still fits


def test_losses_near_1e_300_fit_like_the_same_losses_at_scale_1():
    from matscale.fit.api import fit_law

    x = np.geomspace(1e3, 1e7, 8)
    y = (0.5 + 3.0 * (x / 1e3) ** -0.3) * (1 + 0.01 * np.random.default_rng(0).standard_normal(8))
    ref, tiny = fit_law(x, y, "power_floor"), fit_law(x, y * 1e-300, "power_floor")
    assert not any("bound" in w for w in tiny.warnings) and tiny.errorbars
    for name, unit in (("E", 1e-300), ("A", 1e-300), ("alpha", 1.0)):
        assert tiny[name].value == pytest.approx(ref[name].value * unit, rel=1e-6)
        assert tiny[name].stderr == pytest.approx(ref[name].stderr * unit, rel=1e-4)
        assert tiny[name].ci_low == pytest.approx(ref[name].ci_low * unit, rel=1e-4)
        assert tiny[name].ci_high == pytest.approx(ref[name].ci_high * unit, rel=1e-4)
    assert tiny.predict(1e4)[0] == pytest.approx(ref.predict(1e4)[0] * 1e-300, rel=1e-6)
    assert tiny.data["y"].to_numpy() == pytest.approx(y * 1e-300)
    assert ref.notes == [n for n in tiny.notes if "fitted as y /" not in n]  # ordinary losses: untouched


def test_a_collapsed_interval_beside_a_large_stderr_is_reported_as_not_identified(monkeypatch):
    from matscale.fit import api

    x = np.geomspace(1e3, 1e6, 8)
    y = 2 * x**-0.3 * (1 + 0.02 * np.random.default_rng(1).standard_normal(8))
    # a degenerate profile (as the 1e-300 fit used to give): both ends at the value itself
    monkeypatch.setattr(api, "profile_interval", lambda problem, sol, name, level, step: (
        float(problem.law.to_reported(sol.theta, problem.ln_ref)[problem.law.names.index(name)]),) * 2 + ([],))
    fit = api.fit_law(x, y, "power")
    assert all(p.ci == (None, None) for p in fit.params.values())
    assert any("alpha is not identified" in w for w in fit.warnings)
    assert "[0." not in fit.table().split("correlations")[0].split("CI")[1]


# -- 5. file-system errors ----------------------------------------------------------------------------
def test_disk_full_is_one_line_and_the_run_is_recorded_failed(data, tmp_path, monkeypatch, capsys):
    from matscale.train import checkpoint

    def full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", full)
    root = tmp_path / "runs"
    rc = cli_main(["train", *FLAGS, "--epochs", "1", "--data", str(data), "--run-root", str(root)])
    line = _one_error_line(capsys.readouterr().err)
    assert rc == 2 and "No space left on device" in line and "free space" in line
    summary = json.loads((root / _run_id(data, 1) / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left" in summary["error"]


def test_disk_full_on_a_small_tmpfs(data, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                            capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    if not ok:
        pytest.skip("mounting a tmpfs is not permitted here (the simulated ENOSPC test covers this)")
    try:
        proc = _cli("train", *FLAGS, "--epochs", "1", "--data", data, "--run-root", mnt)
        line = _one_error_line(proc.stderr)
        assert proc.returncode == 2 and "No space left on device" in line
        summary = json.loads((mnt / _run_id(data, 1) / "summary.json").read_text())
        assert summary["status"] == "failed" and "No space left" in summary["error"]
        assert not list(mnt.rglob(".*.tmp"))  # the failed write cleaned up after itself
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=20)


def test_run_root_that_is_a_file_or_a_symlink_loop(data, tmp_path, capsys):
    a_file = tmp_path / "runs.txt"
    a_file.write_text("not a folder")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for root, words in ((a_file, "is not a folder"), (loop, "symbolic link")):
        rc = cli_main(["train", *FLAGS, "--epochs", "1", "--data", str(data), "--run-root", str(root)])
        line = _one_error_line(capsys.readouterr().err)
        assert rc == 2 and str(root) in line and words in line


# -- 6. a non-dict --config ----------------------------------------------------------------------------
def test_a_config_that_is_not_an_object_is_refused(tmp_path, capsys):
    cfg = tmp_path / "list.json"
    cfg.write_text('["fcn", 2]')
    assert cli_main(["train", "--config", str(cfg), "--run-root", str(tmp_path / "runs")]) == 2
    assert "must hold a mapping" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()


# -- 7. messages that point at the real cause -----------------------------------------------------------
def test_messages_name_the_data_and_never_suggest_unsafe_loading(tmp_path):
    from matscale.data.reader import open_split
    from matscale.train import checkpoint
    from matscale.errors import CheckpointError

    path = tmp_path / "ds" / "train" / "rattled-300" / "data.aselmdb"
    _write_db(path, [_labelled(2, sid="a"), _labelled(2, energy=1e30, sid="huge")])
    with pytest.raises(DataError) as e:
        open_split(tmp_path / "ds", "train").validate()
    assert f"{path} row 2" in str(e.value) and "not physical" in str(e.value) and "lr" not in str(e.value)
    np.savez(path.parent / "metadata.npz", natoms=np.array([object()] * 2, dtype=object))
    with pytest.raises(DataError) as e:
        open_split(tmp_path / "ds", "train")
    assert "allow_pickle" not in str(e.value) and "metadata.npz" in str(e.value)

    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "evil.pt"
    torch.save({"format": 1, "model": {}, "x": Evil()}, bad)
    for f in (bad, tmp_path / "garbage.pt"):
        if f.name == "garbage.pt":
            f.write_bytes(b"not a checkpoint")
        with pytest.raises(CheckpointError) as e:
            checkpoint.load(f)
        assert "weights_only" not in str(e.value) and "trusted" not in str(e.value)


def test_a_nonfinite_loss_with_a_wild_row_blames_the_row(emt_structures):
    from matscale.train.diagnose import nonfinite_loss_error
    from matscale.train.normalization import fit_normalization

    rows = [a.copy() for a in emt_structures[:4]]
    for a, b in zip(rows, emt_structures[:4]):
        a.calc = b.calc
    norm = fit_normalization(rows)
    from ase.calculators.singlepoint import SinglePointCalculator

    r = rows[2].calc.results
    rows[2].calc = SinglePointCalculator(rows[2], energy=r["energy"], forces=r["forces"] * 1e6, stress=r["stress"])
    err = nonfinite_loss_error(float("inf"), 3, rows, [0, 1, 2, 3], norm)
    assert isinstance(err, DataError) and f"sid {rows[2].info['sid']}" in str(err) and "lower lr" not in str(err)
    assert "lower lr" in str(nonfinite_loss_error(float("nan"), 3, rows, [0, 1, 3], norm))


# -- 8. sweep bookkeeping -------------------------------------------------------------------------------
def test_killing_the_sweep_kills_its_training_child(data, tmp_path):
    from matscale import locks, runs

    root = tmp_path / "runs"
    spec = tmp_path / "long.yaml"
    spec.write_text(json.dumps({"base": {"arch": "fcn", "size": "xs", "subsets": SUBSETS, "frac": 1.0,
                                         "val_frac": 1.0, "batch_size": 8, "epochs": 5000, "data": str(data)},
                                "grid": {"seed": [0]}}))
    sweep = subprocess.Popen([sys.executable, "-m", "matscale", "sweep", str(spec), "--root", str(root),
                              "--max-parallel", "1", "--no-progress"], env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    run_id = _run_id(data, 5000, seed=0)
    try:
        def child_training():
            holder = locks.status(root, run_id) or {}
            return holder.get("pid") not in (None, sweep.pid) and (root / run_id / "summary.json").exists()

        assert _wait(child_training), "the sweep's child never started training"
        child = locks.status(root, run_id)["pid"]
        sweep.kill()  # SIGKILL: the sweep cannot clean up; the child must notice by itself
        sweep.wait(10)
        t0 = time.time()
        assert _wait(lambda: not _alive(child), timeout=15), "the training child outlived the sweep"
        assert time.time() - t0 < 10
    finally:
        if sweep.poll() is None:
            sweep.kill()
    summary = json.loads((root / run_id / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"].startswith("interrupted (signal SIGTERM)")
    assert runs.load(root).set_index("run_id").loc[run_id, "status"] == "failed"  # resumable, not "running"


def test_concurrent_sweeps_on_one_file_record_completed_runs(tmp_path, monkeypatch):
    import threading

    sys.path.insert(0, str(Path(__file__).parent))
    from test_sweep import fake_command

    from matscale.sweep import load, point as point_mod, run_sweep

    monkeypatch.setattr(point_mod, "command", fake_command)
    monkeypatch.setattr(point_mod, "BUSY_POLL_S", 0.05)
    spec = load({"name": "both", "base": {"arch": "mean", "epochs": 4}, "grid": {"seed": [0, 1, 2]}})
    frames = {}

    def sweep(k):
        frames[k] = run_sweep(spec.configs, max_parallel=2, root=tmp_path, progress=False, name="both")

    threads = [threading.Thread(target=sweep, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for frame in frames.values():
        assert (frame["status"] == "completed").all(), frame[["run_id", "action", "status", "error"]]
    record = pd.read_csv(tmp_path / "_sweeps" / "both.csv")
    assert len(record) == 3 and (record["status"] == "completed").all()
    attempts = [(tmp_path / r / "attempts.txt").read_text().split() for r in record["run_id"]]
    assert attempts == [["new"]] * 3  # each run trained once, by one of the two sweeps


def test_one_bad_grid_value_rejects_only_its_point(tmp_path):
    from matscale.sweep import load, plan

    spec = load({"base": {"arch": "mean", "epochs": 1}, "grid": {"frac": [0.5, "abc"], "seed": [0, 1]}})
    assert len(spec.configs) == 2 and len(spec.invalid) == 2
    points, rows = plan(spec.configs, tmp_path, invalid=spec.invalid)
    assert len(points) == 2
    bad = [r for r in rows if r["action"] == "invalid"]
    assert len(bad) == 2 and all("frac must be a number, got 'abc'" in r["error"] for r in bad)
    with pytest.raises(ConfigError, match="frac must be a number"):  # nothing valid at all: the file is wrong
        load({"grid": {"frac": ["abc"]}})


# -- 9. one lock per run ------------------------------------------------------------------------------
def test_a_second_train_of_a_running_run_is_refused_and_a_dead_lock_is_taken_over(data, tmp_path, capsys):
    from matscale import locks, runs

    root = tmp_path / "runs"
    first = subprocess.Popen([sys.executable, "-m", "matscale", "train", *FLAGS, "--epochs", "5000",
                              "--data", str(data), "--run-root", str(root)], env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_id = _run_id(data, 5000)
    try:
        assert _wait(lambda: (root / run_id / "metrics.csv").exists() or first.poll() is not None)
        assert first.poll() is None
        for cmd in (["train", *FLAGS, "--epochs", "5000", "--data", str(data), "--run-root", str(root), "--resume"],
                    ["train", *FLAGS, "--epochs", "5000", "--data", str(data), "--run-root", str(root), "--force"],
                    ["evaluate", str(root / run_id)]):
            assert cli_main(cmd) == 2
            line = _one_error_line(capsys.readouterr().err)
            assert f"run {run_id} is in progress (pid {first.pid})" in line
        assert (root / run_id / "metrics.csv").exists()  # the refused --force deleted nothing
        assert runs.load(root).set_index("run_id").loc[run_id, "status"] == "running"
    finally:
        first.kill()
        first.wait(20)
    table = runs.load(root).set_index("run_id")  # killed: summary still says running, the table does not
    assert table.loc[run_id, "recorded_status"] == "running" and table.loc[run_id, "status"] == "interrupted"
    with locks.run_lock(root, run_id):  # the dead process's lock is taken over
        assert locks.status(root, run_id)["pid"] == os.getpid()


# -- 10. hygiene ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_result_files_honour_the_umask(tmp_path, umask):
    from matscale.runs import atomic_write_text

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "summary.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_orphan_temps_are_cleaned_and_corrupt_summaries_are_listed(tmp_path, emt_structures, emt_val_structures):
    from matscale import runs
    from matscale.train.loop import train

    cfg = TrainConfig(arch="fcn", size="xs", epochs=1, batch_size=8, run_root=str(tmp_path), device="cpu")
    first = train(cfg, train_set=emt_structures[:8], val_set=emt_val_structures[:4], quiet=True)
    orphan = first.run_dir / "checkpoints" / ".best.pt.k3j2.tmp"
    orphan.write_bytes(b"half a checkpoint")
    summary = json.loads((first.run_dir / "summary.json").read_text())
    (first.run_dir / "summary.json").write_text(json.dumps({**summary, "status": "failed"}))
    train(cfg, train_set=emt_structures[:8], val_set=emt_val_structures[:4], quiet=True, resume=True)
    assert not orphan.exists() and (first.run_dir / "checkpoints" / "best.pt").exists()
    broken = tmp_path / "broken-run"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    with pytest.warns(UserWarning, match="broken-run"):
        table = runs.load(tmp_path)
    assert list(table["run_id"]) == [first.run_id] and table.attrs["corrupt"] == [str(broken)]
    assert [p for p, _ in runs.corrupt_runs(tmp_path)] == [broken]
