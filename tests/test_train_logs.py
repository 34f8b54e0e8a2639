"""Training in a batch job: one plain log line per validation when stdout is not a terminal,
TensorBoard scalars with --tensorboard, and --config files in YAML, TOML or JSON."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from matscale.errors import ConfigError
from matscale.train import logs

SUBSETS = "rattled-1000,rattled-500-subsampled,rattled-300"
SETTINGS = ["--arch", "fcn", "--size", "xs", "--subsets", SUBSETS, "--frac", "1", "--val-frac", "1",
            "--batch-size", "8", "--lr", "3e-3", "--device", "cpu", "--seed", "2"]


def _train(*args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "matscale", "train", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def test_non_tty_train_prints_one_line_per_validation_and_writes_tensorboard(tmp_path, tiny_data_root):
    proc = _train(*SETTINGS, "--epochs", "4", "--val-every", "2", "--data", str(tiny_data_root),
                  "--run-root", str(tmp_path), "--tensorboard")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = next(p for p in tmp_path.iterdir() if p.name.startswith("fcn"))
    metrics = pd.read_csv(run / "metrics.csv")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(run.name + " epoch")]
    assert len(lines) == len(metrics) == 2  # validations after epochs 2 and 4
    total_steps = json.loads((run / "summary.json").read_text())["total_steps"]
    for line, (_, row) in zip(lines, metrics.iterrows()):
        assert f"epoch {int(row['epoch'])}/4 step {int(row['step'])}/{total_steps}" in line
        assert f"val {row['val_loss']:.5g}" in line and f"train {row['train_loss']:.5g}" in line
        assert f"F {1e3 * row['val_force_l2mae_eV_A']:.4g} meV/Å" in line and "meV/atom" in line and "meV/Å³" in line
        assert re.search(r"[\d.e+]+ samples/s", line) and "ETA " in line
    # TensorBoard: every metric as a scalar against the optimiser step
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / logs.TENSORBOARD_DIR))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"val/loss", "train/loss", "val/force_l2mae_eV_A", "progress/lr"} <= set(tags)
    assert [e.step for e in events.Scalars("val/loss")] == metrics["step"].tolist()
    assert [e.value for e in events.Scalars("val/loss")] == pytest.approx(metrics["val_loss"].tolist(), rel=1e-6)


def test_log_line_format_and_terminal_detection(capsys):
    row = {"epoch": 3, "step": 30, "samples_seen": 240, "train_loss": 2.5, "val_loss": 2.25,
           "val_energy_mae_eV_atom": 0.0123, "val_force_l2mae_eV_A": 0.151, "val_stress_mae_eV_A3": 0.0031}
    line = logs.format_line("run-x", row, epochs=10, total_steps=100, samples_per_s=120.0, eta_s=95.0)
    assert line == ("run-x epoch 3/10 step 30/100 | loss train 2.5 val 2.25 | "
                    "val E 12.3 meV/atom F 151 meV/Å σ 3.1 meV/Å³ | 120 samples/s | ETA 1m35s")
    assert [logs.duration(s) for s in (5, 187, 7500)] == ["5s", "3m07s", "2h05m"]

    class Terminal:
        def isatty(self):
            return True

        def write(self, text):
            raise AssertionError("no log lines on a terminal (the progress bars show there)")

    logs.RunLog("run-x", 10, 100, stream=Terminal()).validation(row)
    log = logs.RunLog("run-x", 10, 100)  # pytest's captured stdout is not a terminal
    log.validation(row)
    assert capsys.readouterr().out.startswith("run-x epoch 3/10")


@pytest.mark.parametrize("fmt", ["yaml", "toml", "json"])
def test_config_file_in_yaml_toml_or_json(tmp_path, fmt):
    from matscale.train.cli import build_parser, config_from_args

    text = {"yaml": "arch: fcn\nsize: xs\nepochs: 3\nlr: 0.002\nsubsets: [rattled-300]\n",
            "toml": 'arch = "fcn"\nsize = "xs"\nepochs = 3\nlr = 0.002\nsubsets = ["rattled-300"]\n',
            "json": json.dumps({"run_id": "x", "config": {"arch": "fcn", "size": "xs", "epochs": 3, "lr": 0.002,
                                                          "subsets": ["rattled-300"]}})}[fmt]
    path = tmp_path / f"settings.{fmt}"
    path.write_text(text)
    config = config_from_args(build_parser().parse_args(["--config", str(path), "--epochs", "5"]))
    assert (config.arch, config.size, config.epochs, config.lr, config.subsets) == ("fcn", "xs", 5, 0.002,
                                                                                    ("rattled-300",))
    bad = tmp_path / f"bad.{fmt}"
    bad.write_text({"yaml": "arch: [unclosed\n", "toml": "arch = \n", "json": "{"}[fmt])
    with pytest.raises(ConfigError, match=f"--config {bad}"):
        config_from_args(build_parser().parse_args(["--config", str(bad)]))
    other = tmp_path / "settings.ini"
    other.write_text("arch = fcn\n")
    with pytest.raises(ConfigError, match="YAML, TOML or JSON"):
        config_from_args(build_parser().parse_args(["--config", str(other)]))
