"""Learning-rate schedule: linear warm-up, then cosine decay, over the true optimiser steps.

    factor(0) = warmup_start, rising linearly to 1 at step W = round(warmup_frac · total);
    then factor = min + (1 − min) · (1 + cos(π · (s − W) / (total − 1 − W))) / 2,
    reaching `min_lr_factor` exactly at the last step (total − 1).

The three shape settings are TrainConfig's (`warmup_frac`, `warmup_start`, `min_lr_factor`,
same names here); build from a config with `WarmupCosine.from_config`, so no default lives here.

`total_steps` is the number of optimiser steps the run will take (epochs × global batches
per epoch), so the schedule is the same under DDP as in one process.
"""
from __future__ import annotations

import math

import torch


class WarmupCosine:
    """Callable step -> lr multiplier; a plain object so LambdaLR can save its state."""

    def __init__(self, total_steps: int, warmup_frac: float, warmup_start: float, min_lr_factor: float) -> None:
        self.total_steps = int(total_steps)
        self.warmup_steps = int(round(warmup_frac * total_steps))
        self.warmup_start = float(warmup_start)
        self.min_lr_factor = float(min_lr_factor)

    @classmethod
    def from_config(cls, config, total_steps: int) -> "WarmupCosine":
        return cls(total_steps, config.warmup_frac, config.warmup_start, config.min_lr_factor)

    def __call__(self, step: int) -> float:
        w, last = self.warmup_steps, self.total_steps - 1
        if step < w:
            return self.warmup_start + (1.0 - self.warmup_start) * step / w
        if last <= w:
            return 1.0 if step <= w else self.min_lr_factor
        t = min(max(step - w, 0) / (last - w), 1.0)
        return self.min_lr_factor + (1.0 - self.min_lr_factor) * 0.5 * (1.0 + math.cos(math.pi * t))


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, config) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR stepping once per optimiser step, shaped by `config` (a TrainConfig)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine.from_config(config, total_steps))
