"""The CLI end to end on the tiny on-disk dataset: SIGKILL + --resume equals an uninterrupted
run, torchrun DDP matches one process, evaluate prints meV errors, bad checkpoints fail clearly."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from matscale.config import TrainConfig

# three small subsets of the tiny set: 65 training structures, so the last batch of 8 holds ONE
# structure (under 2 processes one of them runs the zero-weighted stand-in), 15 validation ones
SUBSETS = "rattled-1000,rattled-500-subsampled,rattled-300"
SETTINGS = ["--arch", "fcn", "--size", "xs", "--subsets", SUBSETS, "--frac", "1", "--val-frac", "1",
            "--epochs", "4", "--batch-size", "8", "--lr", "3e-3", "--device", "cpu", "--quiet", "--seed", "1"]


def _env(**extra):
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


# `python -m matscale train` with the loop's test hook SIGKILLing the process after step argv[1]
KILLER = ("import os, signal, sys; from matscale.train import loop; from matscale.cli import main; "
          "k = int(sys.argv.pop(1)); "
          "loop.after_step = lambda s: os.kill(os.getpid(), signal.SIGKILL) if s == k else None; "
          "sys.exit(main(sys.argv[1:]))")


def _train(data, root, *more, env=None, check=True, kill_at=None):
    entry = ["-m", "matscale"] if kill_at is None else ["-c", KILLER, str(kill_at)]
    cmd = [sys.executable, *entry, "train", *SETTINGS, "--data", str(data), "--run-root", str(root), *more]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env or _env())
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _run_dir(root, data):
    cfg = TrainConfig(arch="fcn", size="xs", subsets=tuple(SUBSETS.split(",")), frac=1.0, val_frac=1.0, epochs=4,
                      batch_size=8, lr=3e-3, seed=1, data=str(data))
    return root / cfg.run_id()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, tiny_data_root):
    root = tmp_path_factory.mktemp("ref")
    proc = _train(tiny_data_root, root)
    assert "completed" in proc.stdout
    return _run_dir(root, tiny_data_root)


@pytest.mark.slow  # ~60 s: reference run + killed run + resume, each a fresh process
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_data_root, reference_run):
    ref = pd.read_csv(reference_run / "metrics.csv")
    assert json.loads((reference_run / "summary.json").read_text())["n_train"] % 8 == 1
    steps_per_epoch = int(ref["step"].iloc[0])
    kill_at = 2 * steps_per_epoch + max(1, steps_per_epoch // 2)  # in the middle of epoch 3
    killed = _train(tiny_data_root, tmp_path, kill_at=kill_at, check=False)
    assert killed.returncode == -signal.SIGKILL
    run = _run_dir(tmp_path, tiny_data_root)
    assert json.loads((run / "summary.json").read_text())["status"] == "running"
    _train(tiny_data_root, tmp_path, "--resume")
    got = pd.read_csv(run / "metrics.csv")
    pd.testing.assert_frame_equal(got.drop(columns="wall_s"), ref.drop(columns="wall_s"))
    summary = json.loads((run / "summary.json").read_text())
    ref_summary = json.loads((reference_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed"] is True
    for key in ("best_val_loss", "final_val_loss", "flops", "samples_seen", "steps"):
        assert summary[key] == ref_summary[key], key
    # a finished run is a no-op
    noop = _train(tiny_data_root, tmp_path)
    assert "nothing to do" in noop.stdout


@pytest.mark.slow  # ~30 s: two torchrun processes
def test_torchrun_ddp_matches_one_process(tmp_path, tiny_data_root, reference_run):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "matscale", "train", *SETTINGS, "--data", str(tiny_data_root), "--run-root", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("completed") == 1  # one process reports and writes
    run = _run_dir(tmp_path, tiny_data_root)
    ddp = pd.read_csv(run / "metrics.csv")
    ref = pd.read_csv(reference_run / "metrics.csv")
    assert json.loads((run / "summary.json").read_text())["world_size"] == 2
    for col in ("epoch", "step", "samples_seen", "atoms_seen", "flops"):
        np.testing.assert_array_equal(ddp[col], ref[col], err_msg=col)
    np.testing.assert_allclose(ddp["lr"], ref["lr"], rtol=1e-12)
    for col in ("train_loss", "val_loss", "val_force_l2mae_eV_A", "val_energy_mae_eV_atom"):
        np.testing.assert_allclose(ddp[col], ref[col], rtol=1e-4, err_msg=col)


def test_evaluate_prints_mev_errors(reference_run):
    from matscale.train.evaluate import evaluate_run, format_report

    proc = subprocess.run([sys.executable, "-m", "matscale", "evaluate", str(reference_run)],
                          capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr
    for text in ("meV/atom", "meV/Å", "meV/Å³", "loss"):
        assert text in proc.stdout
    m = evaluate_run(reference_run, equivariance=False)
    summary = json.loads((reference_run / "summary.json").read_text())
    assert m["val_loss"] == pytest.approx(summary["best_val_loss"], rel=1e-5)  # best checkpoint, same structures
    assert m["n_structures"] == summary["n_val"]
    assert f"{1e3 * m['val_energy_mae_eV_atom']:.4g} meV/atom" in format_report(m)
    if "equivariance" in proc.stdout:  # fcn is unconstrained: a measured, non-zero error
        assert "forces" in proc.stdout


def test_evaluate_reports_a_corrupt_checkpoint(tmp_path, reference_run):
    import shutil

    copy = tmp_path / reference_run.name
    shutil.copytree(reference_run, copy)
    (copy / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    proc = subprocess.run([sys.executable, "-m", "matscale", "evaluate", str(copy)],
                          capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: checkpoint") and "corrupt" in proc.stderr and "Traceback" not in proc.stderr


EVERY_ARCH = ["mean", "linear", "fcn", "transformer", "schnet", "equiformer_v2", "esen", "escaip"]


def test_every_architecture_is_registered_under_its_cli_name():
    from matscale import models

    assert set(EVERY_ARCH) <= set(models.architectures())


# over ~20 s each on 2 cores (CI timings: escaip 52 s, esen 32, equiformer_v2 30, schnet 28)
SLOW_ARCHS = ("schnet", "equiformer_v2", "esen", "escaip")


@pytest.mark.parametrize("arch", [pytest.param(a, marks=pytest.mark.slow) if a in SLOW_ARCHS else a
                                  for a in EVERY_ARCH])
def test_every_architecture_trains_through_the_cli(tmp_path, tiny_data_root, arch):
    """`python -m matscale train --arch NAME` end to end for each architecture (its smallest size):
    one epoch on one subset of the tiny set, a completed run folder with a finite validation loss."""
    from matscale import models

    size = models.sizes(arch)[0]
    cmd = [sys.executable, "-m", "matscale", "train", "--arch", arch, "--size", size, "--subsets", "rattled-300",
           "--frac", "1", "--val-frac", "1", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--quiet",
           "--data", str(tiny_data_root), "--run-root", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith("_")]  # not _locks/
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["arch"] == arch and summary["size"] == size
    assert np.isfinite(summary["best_val_loss"])
    assert len(pd.read_csv(run / "metrics.csv")) == 1
