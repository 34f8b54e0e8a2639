"""Training FLOPs per optimiser step, measured with `torch.utils.flop_counter.FlopCounterMode`.

A few representative batches of the training subset (one small and one large structure on
their own, and full batches of random, smallest and largest structures) are run through
forward + loss + backward under FlopCounterMode on a copy of the model. The counts are fitted
(non-negative least squares, relative errors) to

    FLOPs(batch) = a·B + b·ΣN + c·ΣN_i² + d·(ΣN)²

(B structures with N_i atoms: per-structure, per-atom, per-structure attention and packed
attention costs), and every training step adds the prediction for its actual global batch.

What is NOT counted: FlopCounterMode only knows ops with registered formulas — matrix
products (mm, addmm, bmm, baddbmm), convolutions and scaled-dot-product attention. Element-
wise ops (activations, norms, additions), reductions, gather/scatter/index_add, the optimiser
update, data loading and neighbour-list building (numpy/ASE, outside torch) are not counted.
For the models here the matrix products dominate; graph models' message passing by
scatter is the largest blind spot. Validation FLOPs are not counted (training compute only).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from matscale.data.batch import Batch


def _features(natoms: Sequence[int]) -> np.ndarray:
    n = np.asarray(natoms, dtype=np.float64)
    return np.array([len(n), n.sum(), (n ** 2).sum(), n.sum() ** 2])


@dataclass
class FlopModel:
    coef: list[float]  # per [structure, atom, atom² within structures, atom² of the packed batch]
    max_rel_error: float = 0.0  # worst relative misfit on the measured batches
    measured: int = 0

    def __call__(self, natoms: Sequence[int]) -> float:
        return float(_features(natoms) @ np.asarray(self.coef))

    def to_dict(self) -> dict:
        return {"coef": list(map(float, self.coef)), "max_rel_error": float(self.max_rel_error),
                "measured": int(self.measured)}

    @classmethod
    def from_dict(cls, d: dict) -> "FlopModel":
        return cls(list(d["coef"]), float(d.get("max_rel_error", 0.0)), int(d.get("measured", 0)))


def count_step_flops(model: torch.nn.Module, batch: Batch, step_loss: Callable[[torch.nn.Module, Batch], torch.Tensor]) -> int:
    """FLOPs of forward + loss + backward for one batch (the model's grads are left untouched)."""
    clone = copy.deepcopy(model)
    clone.train()
    with FlopCounterMode(display=False) as counter:
        step_loss(clone, batch).backward()
    return int(counter.get_total_flops())


def representative_batches(natoms: np.ndarray, batch_size: int, generator: np.random.Generator) -> list[np.ndarray]:
    """Index sets spanning the sizes a training step sees."""
    order = np.argsort(natoms, kind="stable")
    b = min(batch_size, len(natoms))
    sets = [order[:1], order[-1:], order[:b], order[-b:],
            generator.choice(len(natoms), size=b, replace=False),
            generator.choice(len(natoms), size=max(1, b // 2), replace=False)]
    unique, seen = [], set()
    for s in sets:
        key = tuple(sorted(s.tolist()))
        if key not in seen:
            seen.add(key)
            unique.append(np.asarray(s))
    return unique


def fit_flop_model(measurements: list[tuple[Sequence[int], int]]) -> FlopModel:
    """Non-negative least squares on relative errors of (natoms of batch, FLOPs) pairs."""
    from scipy.optimize import nnls

    X = np.stack([_features(n) for n, _ in measurements])
    y = np.asarray([f for _, f in measurements], dtype=np.float64)
    if not np.any(y > 0):
        return FlopModel([0.0, 0.0, 0.0, 0.0], 0.0, len(y))
    w = 1.0 / np.maximum(y, 1.0)
    col = np.maximum(X.max(0), 1.0)  # column scaling for conditioning
    coef, _ = nnls((X / col) * w[:, None], y * w)
    coef = coef / col
    pred = X @ coef
    rel = np.abs(pred - y) / np.maximum(y, 1.0)
    return FlopModel(coef.tolist(), float(rel.max()), len(y))


def measure(model: torch.nn.Module, dataset, natoms: np.ndarray, batch_size: int,
            step_loss: Callable[[torch.nn.Module, Batch], torch.Tensor],
            collate: Callable[[list], Batch], device, seed: int = 0) -> FlopModel:
    """Fit a `FlopModel` from FlopCounterMode counts on representative training batches."""
    rng = np.random.default_rng(seed)
    out = []
    for idx in representative_batches(np.asarray(natoms), batch_size, rng):
        batch = collate([dataset[int(i)] for i in idx]).to(device)
        out.append((np.asarray(natoms)[idx].tolist(), count_step_flops(model, batch, step_loss)))
    return fit_flop_model(out)
