"""`RunSummary`: the one definition of a run's summary.json, written by the training loop and
read by the study (and faked by tests through the same class).

On disk the file stays flat JSON: the best checkpoint's validation metrics are written as
`best_<metric>` keys (e.g. `best_val_force_l2mae_eV_A`), and keys this class does not know
(added by newer code) survive a read/write round trip in `extra`.
Units: losses are in the run's loss units (see train/normalization.py), flops in FLOPs,
wall_s in seconds, n_* in structures/atoms.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

BEST_PREFIX = "best_val_"  # best_<val metric>: the best checkpoint's validation metrics


@dataclass
class RunSummary:
    status: str = "running"  # running | completed | failed | stopped_early
    arch: str | None = None
    size: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None  # "<ExceptionType>: message" when failed
    world_size: int = 1
    device: str | None = None
    resumed: bool = False
    # data and model
    n_train: int | None = None  # training structures D
    n_val: int | None = None
    n_train_atoms: int | None = None
    params_total: int | None = None
    params_non_embedding: int | None = None  # the paper's N
    trainable: bool | None = None  # False: closed-form baseline (no SGD, no FLOPs)
    normalization: dict | None = None
    loss_units: dict | None = None
    flop_model: dict | None = None
    total_steps: int | None = None
    steps_per_epoch: int | None = None
    # progress and results
    best_val_loss: float | None = None
    best_epoch: int | None = None
    best_step: int | None = None
    final_val_loss: float | None = None
    final_train_loss: float | None = None
    flops: float | None = None  # cumulative training FLOPs C
    samples_seen: int | None = None
    atoms_seen: int | None = None
    steps: int | None = None
    epochs_completed: int | None = None
    wall_s: float | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)  # val metric -> value at the best checkpoint
    extra: dict[str, Any] = field(default_factory=dict)

    def update(self, **values) -> "RunSummary":
        for key, value in values.items():
            if key in _FIELDS:
                setattr(self, key, value)
            else:
                self.extra[key] = value
        return self

    def set_best_metrics(self, row: dict[str, Any]) -> None:
        """The best checkpoint's validation metrics from its metrics row (val_loss itself excluded)."""
        self.best_metrics = {k: v for k, v in row.items() if k.startswith("val_") and k != "val_loss"}

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("best_metrics", "extra")}
        out.update({f"best_{k}": v for k, v in self.best_metrics.items()})
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "RunSummary":
        d = dict(d or {})
        d.pop("run_id", None)  # the folder's name; RunDir adds it on write
        known = {k: d.pop(k) for k in list(d) if k in _FIELDS}
        best = {k[len("best_"):]: d.pop(k) for k in list(d) if k.startswith(BEST_PREFIX)}
        return cls(**known, best_metrics=best, extra=d)

    def get(self, key: str, default=None):
        """Dict-style access by on-disk key (e.g. 'best_val_force_l2mae_eV_A')."""
        value = self.to_dict().get(key, default)
        return default if value is None else value

    def replace(self, **changes) -> "RunSummary":
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name for f in fields(RunSummary)} - {"best_metrics", "extra"}
