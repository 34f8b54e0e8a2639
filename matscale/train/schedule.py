"""Learning-rate schedule: linear warm-up, then cosine decay, over the true optimiser steps.

    factor(0) = warmup_start, rising linearly to 1 at step W = round(warmup_frac · total);
    then factor = min + (1 − min) · (1 + cos(π · (s − W) / (total − 1 − W))) / 2,
    reaching `min_factor` exactly at the last step (total − 1).

`total_steps` is the number of optimiser steps the run will take (epochs × global batches
per epoch), so the schedule is the same under DDP as in one process.
"""
from __future__ import annotations

import math

import torch


class WarmupCosine:
    """Callable step -> lr multiplier; a plain object so LambdaLR can save its state."""

    def __init__(self, total_steps: int, warmup_frac: float = 0.01, warmup_start: float = 0.2,
                 min_factor: float = 0.01) -> None:
        self.total_steps = int(total_steps)
        self.warmup_steps = int(round(warmup_frac * total_steps))
        self.warmup_start = float(warmup_start)
        self.min_factor = float(min_factor)

    def __call__(self, step: int) -> float:
        w, last = self.warmup_steps, self.total_steps - 1
        if step < w:
            return self.warmup_start + (1.0 - self.warmup_start) * step / w
        if last <= w:
            return 1.0 if step <= w else self.min_factor
        t = min(max(step - w, 0) / (last - w), 1.0)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * t))


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_frac: float,
                   warmup_start: float, min_factor: float) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR stepping once per optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(total_steps, warmup_frac, warmup_start, min_factor))
