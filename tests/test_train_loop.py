"""The training loop end to end on tiny in-memory EMT data: run folder, determinism,
early stopping, precision, baselines, failures, checkpoints, overfitting."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from matscale import models
from matscale.config import TrainConfig
from matscale.errors import CheckpointError, ConfigError, DataError
from matscale.train import checkpoint
from matscale.train.loop import resolved_config, train

torch.set_num_threads(1)

TINY = dict(arch="fcn", size="xs", epochs=3, batch_size=8, lr=3e-3, device="cpu", val_every=1)


def _train(tmp_path, data, val, **changes):
    cfg = resolved_config(TrainConfig(**{**TINY, "run_root": str(tmp_path), **changes}), data, val)
    return cfg, train(cfg, train_set=data, val_set=val, quiet=True)


def test_run_folder_has_everything_design_section5_lists(tmp_path, emt_structures, emt_val_structures):
    cfg, r = _train(tmp_path, emt_structures[:24], emt_val_structures)
    d = tmp_path / cfg.run_id()
    assert r.run_dir == d and r.status == "completed" and not r.skipped
    assert sorted(p.name for p in d.iterdir()) == ["checkpoints", "config.json", "metrics.csv", "summary.json"]
    meta = json.loads((d / "config.json").read_text())
    assert meta["run_id"] == cfg.run_id()
    assert meta["config"] == cfg.validate().to_dict()
    assert {"python", "torch", "numpy", "ase"} <= set(meta["versions"]) and "commit" in meta["git"]
    m = pd.read_csv(d / "metrics.csv")
    assert list(m["epoch"]) == [1, 2, 3] and list(m["step"]) == [3, 6, 9]
    assert list(m["samples_seen"]) == [24, 48, 72]
    assert (np.diff(m["flops"]) > 0).all() and m["flops"].iloc[0] > 0
    for col in ("wall_s", "lr", "train_loss", "val_loss", "train_loss_force", "val_loss_stress_aniso",
                "val_energy_mae_eV_atom", "val_force_l2mae_eV_A", "val_force_mae_eV_A",
                "val_stress_iso_mae_eV_A3", "val_stress_aniso_mae_eV_A3", "train_energy_mae_eV_atom"):
        assert col in m and m[col].notna().all(), col
    s = json.loads((d / "summary.json").read_text())
    assert s["status"] == "completed" and s["error"] is None
    total, non_emb = models.count_parameters(models.build("fcn", "xs"))
    assert (s["params_total"], s["params_non_embedding"]) == (total, non_emb)
    assert s["best_val_loss"] == pytest.approx(m["val_loss"].min())
    assert s["final_val_loss"] == pytest.approx(m["val_loss"].iloc[-1])
    assert s["flops"] == pytest.approx(m["flops"].iloc[-1]) and s["steps"] == 9
    # the FLOP fit reproduces its measurements closely (fcn is linear in atoms)
    assert s["flop_model"]["max_rel_error"] < 0.05
    # checkpoints load with weights_only=True and restore the model
    for name in ("last", "best"):
        ck = torch.load(d / "checkpoints" / f"{name}.pt", weights_only=True)
        assert ck["run_id"] == cfg.run_id()
    model, _, ck = checkpoint.load_model(d, "best")
    assert float(model.force_scale) == pytest.approx(s["normalization"]["force_scale"])
    assert ck["epoch"] == s["best_epoch"]


def test_same_seed_same_metrics_and_rerun_is_a_noop(tmp_path, emt_structures, emt_val_structures):
    data, val = emt_structures[:16], emt_val_structures[:8]
    cfg, r1 = _train(tmp_path / "a", data, val, seed=5)
    _, r2 = _train(tmp_path / "b", data, val, seed=5)
    m1, m2 = r1.metrics.drop(columns="wall_s"), r2.metrics.drop(columns="wall_s")
    pd.testing.assert_frame_equal(m1, m2)
    # a different seed gives a different trajectory
    _, r3 = _train(tmp_path / "c", data, val, seed=6)
    assert not np.allclose(r3.metrics["train_loss"], r1.metrics["train_loss"])
    # re-running the finished config does nothing; --force re-runs it
    before = (r1.run_dir / "metrics.csv").stat().st_mtime_ns
    again = train(cfg, train_set=data, val_set=val, quiet=True)
    assert again.skipped and again.status == "completed"
    assert (r1.run_dir / "metrics.csv").stat().st_mtime_ns == before
    forced = train(cfg, train_set=data, val_set=val, quiet=True, force=True)
    assert not forced.skipped
    pd.testing.assert_frame_equal(forced.metrics.drop(columns="wall_s"), m1)


def test_unfinished_run_needs_resume_or_force(tmp_path, emt_structures, emt_val_structures):
    cfg, r = _train(tmp_path, emt_structures[:8], emt_val_structures[:4], epochs=1)
    s = json.loads((r.run_dir / "summary.json").read_text())
    s["status"] = "running"
    (r.run_dir / "summary.json").write_text(json.dumps(s))
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg, train_set=emt_structures[:8], val_set=emt_val_structures[:4], quiet=True)


def test_early_stopping_counts_validations(tmp_path, emt_structures, emt_val_structures):
    # lr so small that the weights never change: every validation after the first fails to improve
    cfg, r = _train(tmp_path, emt_structures[:8], emt_val_structures[:4], epochs=10, lr=1e-30, patience=2)
    assert r.status == "stopped_early"
    assert list(r.metrics["epoch"]) == [1, 2, 3]
    assert r.summary["epochs_completed"] == 3 and r.summary["best_epoch"] == 1


def test_val_every_final_validation_and_vis_files(tmp_path, emt_structures, emt_val_structures):
    _, r = _train(tmp_path, emt_structures[:8], emt_val_structures[:4], epochs=5, val_every=2, vis_every=2)
    assert list(r.metrics["epoch"]) == [2, 4, 5]
    assert sorted(p.name for p in (r.run_dir / "vis").iterdir()) == ["epoch_0002.npz", "epoch_0004.npz"]
    vis = np.load(r.run_dir / "vis" / "epoch_0004.npz")
    assert vis["forces_pred"].shape == vis["forces_true"].shape == (sum(len(a) for a in emt_val_structures[:4]), 3)
    assert vis["energy_per_atom_true"].shape == (4,)


def test_bf16_autocast_trains_on_cpu(tmp_path, emt_structures, emt_val_structures):
    _, r = _train(tmp_path, emt_structures[:16], emt_val_structures[:8], precision="bf16", epochs=2)
    assert r.status == "completed" and np.isfinite(r.metrics["val_loss"]).all()


def test_rotation_augmentation_runs(tmp_path, emt_structures, emt_val_structures):
    pytest.importorskip("matscale.models.symmetry", reason="matscale.models.symmetry not written yet")
    _, r = _train(tmp_path, emt_structures[:16], emt_val_structures[:8], rotation_augment=True, epochs=2)
    _, plain = _train(tmp_path, emt_structures[:16], emt_val_structures[:8], epochs=2)
    assert r.status == "completed"
    assert not np.allclose(r.metrics["train_loss"], plain.metrics["train_loss"])


def test_linear_baseline_is_fitted_not_trained(tmp_path, emt_structures, emt_val_structures):
    cfg, r = _train(tmp_path, emt_structures, emt_val_structures, arch="linear", size=None)
    m = r.metrics
    assert len(m) == 1 and m["step"].iloc[0] == 0 and m["flops"].iloc[0] == 0
    assert r.summary["trainable"] is False and r.summary["status"] == "completed"
    # zero forces: the force L2MAE equals the mean true force norm of the val structures
    norms = np.concatenate([np.linalg.norm(a.calc.results["forces"], axis=1) for a in emt_val_structures])
    assert m["val_force_l2mae_eV_A"].iloc[0] == pytest.approx(norms.mean(), rel=1e-5)
    assert m["val_loss_force"].iloc[0] == pytest.approx(20 * norms.mean() / r.summary["normalization"]["force_scale"], rel=1e-5)
    model, _, _ = checkpoint.load_model(r.run_dir)
    assert model.fitted


def test_failed_run_records_the_error(tmp_path, emt_structures, emt_val_structures):
    from ase.calculators.singlepoint import SinglePointCalculator

    bad = [a.copy() for a in emt_structures[:8]]
    bad[3].calc = SinglePointCalculator(bad[3], energy=1.0)  # no forces/stress
    cfg = resolved_config(TrainConfig(**{**TINY, "run_root": str(tmp_path)}), bad, emt_val_structures[:4])
    with pytest.raises(DataError):
        train(cfg, train_set=bad, val_set=emt_val_structures[:4], quiet=True)
    s = json.loads((tmp_path / cfg.run_id() / "summary.json").read_text())
    assert s["status"] == "failed" and "DataError" in s["error"] and "labels" in s["error"]


def test_corrupt_and_mismatched_checkpoints_are_clear_errors(tmp_path, emt_structures, emt_val_structures):
    data, val = emt_structures[:8], emt_val_structures[:4]
    cfg_a, ra = _train(tmp_path, data, val, epochs=1)
    cfg_b, rb = _train(tmp_path, data, val, epochs=1, seed=1)
    # a checkpoint of another run
    shutil.copy(ra.run_dir / "checkpoints" / "last.pt", rb.run_dir / "checkpoints" / "last.pt")
    s = json.loads((rb.run_dir / "summary.json").read_text())
    s["status"] = "failed"
    (rb.run_dir / "summary.json").write_text(json.dumps(s))
    with pytest.raises(CheckpointError, match="belongs to run"):
        train(cfg_b, train_set=data, val_set=val, quiet=True, resume=True)
    # a truncated file
    path = ra.run_dir / "checkpoints" / "best.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load_model(ra.run_dir, "best")
    # weights of another architecture
    _, rt = _train(tmp_path, data, val, epochs=1, arch="transformer", size="xs")
    state = torch.load(rt.run_dir / "checkpoints" / "best.pt", weights_only=True)
    model = models.build("fcn", "xs")
    with pytest.raises(CheckpointError, match="do not match"):
        checkpoint.load_model_state(model, state["model"], "x.pt")


def _trainable_archs():
    out = []
    for arch in models.architectures():
        try:
            spec = models.spec(arch)
        except Exception as exc:  # module not written yet (or its dependency missing)
            out.append(pytest.param(arch, marks=pytest.mark.skip(reason=f"{arch} not available: {exc}")))
            continue
        if spec.trainable:
            out.append(pytest.param(arch, marks=pytest.mark.slow) if arch in SLOW_OVERFIT else arch)
    return out


# per-arch settings for the 32-structure overfitting run (full batch), tuned on 2 busy CPU cores;
# an arch not listed uses its smallest size and DEFAULT_OVERFIT. Measured final/initial ratios:
# fcn 0.065, transformer 0.047, schnet 0.090, equiformer_v2 0.092, esen 0.082, escaip ~0.08.
DEFAULT_OVERFIT = dict(epochs=150, lr=5e-3)
OVERFIT = {
    "fcn": dict(size="s", epochs=200, lr=3e-2),
    "transformer": dict(size="s", epochs=250, lr=1e-2),
    "schnet": dict(size="xs", epochs=100, lr=1e-2),
    # the graph models below cost 0.5-1.5 s per step on one core (second-order backward for
    # the conservative ones), so they take 1-2 minutes each
    "equiformer_v2": dict(size="xxs", epochs=180, lr=1e-2),
    "esen": dict(size="xs", epochs=200, lr=5e-3),
    "escaip": dict(size="xs", epochs=200, lr=3e-3),
}
SLOW_OVERFIT = ("equiformer_v2", "esen", "escaip")


@pytest.mark.parametrize("arch", _trainable_archs())
def test_each_neural_model_overfits_32_structures(tmp_path, arch, emt_structures):
    """The paper's sanity test: train loss below 10% of its initial value on 32 structures."""
    from matscale.train.loss import LossWeights
    from matscale.train.normalization import fit_normalization
    from matscale.train.validation import evaluate

    data = emt_structures[:32]
    settings = dict(size=models.sizes(arch)[0], batch_size=32, warmup_frac=0.05, min_lr_factor=0.1,
                    weight_decay=0.0)
    settings.update(OVERFIT.get(arch, DEFAULT_OVERFIT))
    size = settings["size"]
    torch.manual_seed(0)
    fresh = models.build(arch, size)
    norm = fit_normalization(data)
    norm.apply(fresh)
    initial = evaluate(fresh, data, LossWeights.from_config(TrainConfig()), norm.loss_scales()).result("train")["train_loss"]
    cfg, r = _train(tmp_path, data, data, arch=arch, val_every=settings["epochs"], **settings)
    final = r.metrics["val_loss"].iloc[-1]  # "val" here is the training set itself, in eval mode
    print(f"{arch}-{size}: initial {initial:.4g} final {final:.4g} ratio {final / initial:.3g}")
    assert final < 0.1 * initial, f"{arch}: {final:.4g} is not below 10% of {initial:.4g}"


def test_resume_from_a_time_based_checkpoint_keeps_train_metrics(tmp_path, emt_structures, emt_val_structures,
                                                                   monkeypatch):
    """last.pt written between validations (CHECKPOINT_SECONDS) carries the partial train metrics."""
    from matscale.train import loop

    data, val = emt_structures[:16], emt_val_structures[:4]
    _, ref = _train(tmp_path / "ref", data, val, epochs=4, val_every=2)
    monkeypatch.setattr(loop, "CHECKPOINT_SECONDS", -1.0)  # a checkpoint after every epoch

    def fail_at_7(step):  # epoch 4, after epoch 3's checkpoint
        if step == 7:
            raise RuntimeError("injected failure after step 7")

    monkeypatch.setattr(loop, "after_step", fail_at_7)
    cfg = resolved_config(TrainConfig(**{**TINY, "run_root": str(tmp_path / "b"), "epochs": 4, "val_every": 2}),
                          data, val)
    with pytest.raises(RuntimeError, match="injected failure"):
        train(cfg, train_set=data, val_set=val, quiet=True)
    assert json.loads((tmp_path / "b" / cfg.run_id() / "summary.json").read_text())["status"] == "failed"
    assert torch.load(tmp_path / "b" / cfg.run_id() / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 3
    monkeypatch.setattr(loop, "after_step", None)
    resumed = train(cfg, train_set=data, val_set=val, quiet=True, resume=True)
    assert resumed.status == "completed" and resumed.summary["resumed"]
    pd.testing.assert_frame_equal(resumed.metrics.drop(columns="wall_s"), ref.metrics.drop(columns="wall_s"))


def test_finished_run_without_weights_retrains_only_when_asked(tmp_path, emt_structures, emt_val_structures):
    data, val = emt_structures[:8], emt_val_structures[:4]
    cfg, r = _train(tmp_path, data, val, epochs=1)
    shutil.rmtree(r.run_dir / "checkpoints")  # as in a fresh clone: checkpoints are git-ignored
    assert train(cfg, train_set=data, val_set=val, quiet=True).skipped
    again = train(cfg, train_set=data, val_set=val, quiet=True, require_weights=True)
    assert not again.skipped and (r.run_dir / "checkpoints" / "best.pt").exists()
    pd.testing.assert_frame_equal(again.metrics.drop(columns="wall_s"), r.metrics.drop(columns="wall_s"))


def test_loss_units_are_shared_by_runs_of_different_subsets(tmp_path, tiny_data_root):
    """Each run fits its model's normalisation on its own subset, but its losses are in units
    fitted on a fixed sample of the whole training split, so runs compare."""
    out = []
    for seed in (0, 1):
        cfg = TrainConfig(arch="fcn", size="xs", epochs=1, batch_size=16, device="cpu", data=str(tiny_data_root),
                          subsets=("rattled-1000", "rattled-500"), frac=0.3, seed=seed, run_root=str(tmp_path))
        out.append(train(cfg, quiet=True).summary)
    a, b = out
    assert a["loss_units"] == b["loss_units"]
    assert a["normalization"]["force_scale"] != b["normalization"]["force_scale"]
    # the units are the RMS values of the reference sample (all 55 structures of these subsets here)
    from matscale.data import open_split
    from matscale.train.normalization import fit_normalization

    full = open_split(tiny_data_root, "train", subsets=["rattled-1000", "rattled-500"])
    ref = fit_normalization(full[i] for i in range(len(full)))
    assert a["loss_units"]["force"] == pytest.approx(ref.force_scale)
    assert a["loss_units"]["stress"] == pytest.approx(ref.stress_scale)
