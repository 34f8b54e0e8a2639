"""The training loop's plain parts: its state, its result, seeding, parameter groups, rotations.

    TrainState   counters + best validation + train metrics since the last validation
    RunResult    what `train()` returns (run id, folder, status, summary dict)
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matscale.errors import ConfigError
from matscale.runs import RunDir
from matscale.train.loss import LossMeter


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False  # True when the run was already finished and nothing was done

    @property
    def metrics(self):
        return RunDir(self.run_dir).read_metrics()


@dataclass
class TrainState:
    """Where training stands: checkpointed at epoch ends (`progress()` keys), resumed from them."""
    train_meter: LossMeter  # training losses since the last validation
    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps taken
    samples_seen: int = 0
    atoms_seen: int = 0
    flops: float = 0.0
    best: dict[str, Any] = field(default_factory=lambda: {"val_loss": None, "epoch": None, "step": None,
                                                          "bad_validations": 0})
    grad_norms: list[float] = field(default_factory=list)  # since the last validation

    KEYS = ("epoch", "step", "samples_seen", "atoms_seen", "flops", "best")

    def progress(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.KEYS}

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], meter: LossMeter) -> "TrainState":
        meter.load_state_dict(ckpt["train_meter"])
        return cls(train_meter=meter, grad_norms=list(ckpt["grad_norms"]), **{k: ckpt[k] for k in cls.KEYS})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices only (not on embeddings, biases, norms)."""
    emb = {id(p) for p in model.embedding_parameters()} if hasattr(model, "embedding_parameters") else set()
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and id(p) not in emb else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def rotation_fns():
    """rotate(batch, generator, n_global, local_idx): the global batch's rotations, this shard's part."""
    try:
        from matscale.models.symmetry import random_rotations, rotate_batch
    except ImportError as exc:
        raise ConfigError(f"rotation_augment needs matscale.models.symmetry ({exc})") from exc

    def rotate(batch, generator, n_global, local_idx):
        R = random_rotations(n_global, generator)[torch.as_tensor(local_idx)]
        return rotate_batch(batch, R)

    return rotate
