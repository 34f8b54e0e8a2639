"""TrainConfig: defaults, validation errors, run ids, and the CLI generated from it."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from matscale.config import TrainConfig
from matscale.errors import ConfigError
from matscale.train.cli import build_parser, config_from_args


def test_defaults_validate_to_the_omat24_recipe():
    c = TrainConfig(device="cpu").validate()
    assert c.size is not None and c.device == "cpu"
    assert (c.energy_weight, c.force_weight, c.stress_iso_weight, c.stress_aniso_weight) == (2.5, 20.0, 5.0, 5.0)
    assert (c.warmup_start, c.min_lr_factor, c.warmup_frac, c.weight_decay) == (0.2, 0.01, 0.01, 1e-3)
    assert c.precision == "none"


@pytest.mark.parametrize("changes, words", [
    (dict(lr=-1e-3), "lr must be > 0"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(frac=0.0), "frac must be in (0, 1]"),
    (dict(frac=1.5), "frac must be in (0, 1]"),
    (dict(val_frac=0), "val_frac must be in (0, 1]"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(batch_size=0), "batch_size must be >= 1"),
    (dict(arch="resnet"), "unknown architecture 'resnet'"),
    (dict(arch="fcn", size="huge"), "unknown size 'huge' for fcn"),
    (dict(precision="fp16"), "fp16 needs a CUDA GPU"),
    (dict(precision="fp8"), "precision must be one of"),
    (dict(device="tpu"), "device 'tpu'"),
    (dict(warmup_frac=1.0), "warmup_frac"),
    (dict(energy_weight=0, force_weight=0, stress_iso_weight=0, stress_aniso_weight=0), "not all zero"),
    (dict(patience=-1), "patience"),
    (dict(lr=float("nan")), "lr must be a finite number"),
    (dict(epochs=2.5), "epochs must be an integer"),
])
def test_bad_settings_raise_one_clear_config_error(changes, words):
    with pytest.raises(ConfigError, match=None) as info:
        TrainConfig(**{"device": "cpu", **changes}).validate()
    assert words in str(info.value)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_device_without_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        TrainConfig(device="cuda").validate()


def test_run_id_is_readable_and_depends_only_on_result_settings():
    c = TrainConfig(arch="fcn", size="s", frac=0.01, seed=3, device="cpu")
    rid = c.run_id()
    assert rid.startswith("fcn-s-frac0.01-seed3-") and len(rid.split("-")[-1]) == 8
    # settings that do not change results keep the id
    assert c.replace(device="cuda", num_workers=4, cache_data=False, run_root="/x", vis_every=3).run_id() == rid
    # settings that do change it
    for change in (dict(lr=2e-3), dict(epochs=11), dict(force_weight=10.0), dict(precision="bf16"),
                   dict(subsets=("rattled-300",)), dict(data="/elsewhere"), dict(rotation_augment=True)):
        assert c.replace(**change).run_id() != rid, change
    assert c.validate().run_id() == rid  # resolution does not change it when size is given


def test_dict_round_trip_and_unknown_keys():
    c = TrainConfig(subsets=("rattled-300", "rattled-500"), device="cpu")
    d = c.to_dict()
    assert d["subsets"] == ["rattled-300", "rattled-500"]
    assert TrainConfig.from_dict(d) == c
    with pytest.raises(ConfigError, match="unknown setting"):
        TrainConfig.from_dict({**d, "learning_rate": 1.0})


def test_cli_is_generated_from_every_field():
    parser = build_parser()
    text = parser.format_help()
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in text, f.name
    assert "[structures]" in text and "(default: 16)" in text  # units and defaults shown
    args = parser.parse_args(["--arch", "fcn", "--frac", "0.05", "--lr", "3e-4", "--subsets", "rattled-300,aimd-from-PBE-1000-nvt",
                              "--no-cache-data", "--rotation-augment", "--precision", "bf16"])
    c = config_from_args(args)
    assert (c.arch, c.frac, c.lr, c.cache_data, c.rotation_augment, c.precision) == ("fcn", 0.05, 3e-4, False, True, "bf16")
    assert c.subsets == ("rattled-300", "aimd-from-PBE-1000-nvt")
    assert c.epochs == TrainConfig().epochs  # untouched settings keep their defaults


def test_cli_reports_bad_settings_with_exit_code_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "matscale", "train", "--lr", "-1", "--device", "cpu",
                           "--run-root", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: lr must be > 0"), proc.stderr
    assert "Traceback" not in proc.stderr
