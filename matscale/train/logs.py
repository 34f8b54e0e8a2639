"""What a training run reports while it runs, besides metrics.csv: plain log lines and TensorBoard.

* Log lines: when stdout is not a terminal (nohup, a SLURM or sweep log, CI, a notebook) there
  are no progress bars, so every validation prints one plain line to stdout:

      schnet-xs-frac0.01-seed0-1a2b3c4d epoch 3/15 step 57/285 | loss train 12.31 val 11.87 |
      val E 14.2 meV/atom F 151 meV/Å σ 3.1 meV/Å³ | train E ... | 245 samples/s | ETA 1m23s

  (one line; E: energy-per-atom MAE, F: force L2MAE, σ: stress-component MAE, all physical).
* TensorBoard (`TrainConfig.tensorboard`, `--tensorboard`): every metrics row's numbers as
  scalars under `<run_dir>/tensorboard/`, against the optimiser step; view them with
  `tensorboard --logdir runs`. The package is imported only when asked for.

The loop calls `RunLog.validation(row)` with each metrics row and `close()` at the end; only
the process that writes results (rank 0) logs.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from matscale.errors import ConfigError

TENSORBOARD_DIR = "tensorboard"
# (metric suffix, label, factor to the printed unit, unit)
_PHYSICAL = (("energy_mae_eV_atom", "E", 1e3, "meV/atom"), ("force_l2mae_eV_A", "F", 1e3, "meV/Å"),
             ("stress_mae_eV_A3", "σ", 1e3, "meV/Å³"))


def duration(seconds: float) -> str:
    """'45s', '3m07s', '2h05m' for a number of seconds."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def physical(row: dict[str, Any], prefix: str) -> str:
    """'E 14.2 meV/atom F 151 meV/Å σ 3.1 meV/Å³' for `prefix` ('train' or 'val'); '' when absent."""
    parts = [f"{label} {factor * row[f'{prefix}_{key}']:.4g} {unit}" for key, label, factor, unit in _PHYSICAL
             if _num(row.get(f"{prefix}_{key}")) is not None]
    return " ".join(parts)


def format_line(run_id: str, row: dict[str, Any], epochs: int, total_steps: int,
                samples_per_s: float | None, eta_s: float | None) -> str:
    """One validation as one plain line (see the module docstring)."""
    head = f"{run_id} epoch {row.get('epoch')}/{epochs} step {row.get('step')}/{total_steps}"
    losses = " ".join(f"{p} {row[f'{p}_loss']:.5g}" for p in ("train", "val") if _num(row.get(f"{p}_loss")) is not None)
    parts = [head, f"loss {losses}" if losses else ""]
    for prefix in ("val", "train"):
        text = physical(row, prefix)
        if text:
            parts.append(f"{prefix} {text}")
    if samples_per_s is not None:
        parts.append(f"{samples_per_s:.4g} samples/s")
    if eta_s is not None:
        parts.append(f"ETA {duration(eta_s)}")
    return " | ".join(p for p in parts if p)


class RunLog:
    """Per-validation log lines and TensorBoard scalars of one run (see the module docstring).

    lines: None prints them when `stream` is not a terminal. `tensorboard_dir`: where to write
    TensorBoard event files (None: no TensorBoard).
    """

    def __init__(self, run_id: str, epochs: int, total_steps: int, *, lines: bool | None = None,
                 tensorboard_dir: str | Path | None = None, stream: TextIO | None = None,
                 start_step: int = 0, start_samples: int = 0) -> None:
        self.run_id, self.epochs, self.total_steps = run_id, epochs, total_steps
        self.stream = stream if stream is not None else sys.stdout
        self.lines = (not _isatty(self.stream)) if lines is None else bool(lines)
        self.writer = open_tensorboard(tensorboard_dir) if tensorboard_dir is not None else None
        self._t0, self._step0 = time.perf_counter(), start_step
        self._last = (self._t0, start_samples)

    @classmethod
    def disabled(cls) -> "RunLog":
        return cls("", 0, 0, lines=False)

    def validation(self, row: dict[str, Any]) -> None:
        """Report one metrics row (a dict as written to metrics.csv)."""
        now, step, samples = time.perf_counter(), int(row.get("step") or 0), int(row.get("samples_seen") or 0)
        last_t, last_samples = self._last
        rate = (samples - last_samples) / (now - last_t) if now > last_t and samples > last_samples else None
        done = step - self._step0
        eta = (now - self._t0) / done * max(self.total_steps - step, 0) if done > 0 else None
        self._last = (now, samples)
        if self.lines:
            print(format_line(self.run_id, row, self.epochs, self.total_steps, rate, eta), file=self.stream, flush=True)
        if self.writer is not None:
            for key, value in row.items():
                number = _num(value)
                if number is not None and key not in ("epoch", "step") and math.isfinite(number):
                    self.writer.add_scalar(_tag(key), number, global_step=step)
            if rate is not None:
                self.writer.add_scalar("speed/samples_per_s", rate, global_step=step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _tag(key: str) -> str:
    """TensorBoard tag: 'val_loss_force' -> 'val/loss_force', 'lr' -> 'train/lr'."""
    for prefix in ("train", "val"):
        if key.startswith(prefix + "_"):
            return f"{prefix}/{key[len(prefix) + 1:]}"
    return f"progress/{key}"


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def open_tensorboard(folder: str | Path):
    """A TensorBoard SummaryWriter on `folder`; ConfigError naming the fix when the package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ConfigError("--tensorboard needs the 'tensorboard' package (a matscale dependency): "
                          f"pip install tensorboard, or train without --tensorboard ({exc})") from exc
    Path(folder).mkdir(parents=True, exist_ok=True)
    return SummaryWriter(log_dir=str(folder))
