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

Gather/scatter (`step_flops_breakdown`, used by bench/bench_peers.py, not by the training
FlopModel, whose matmul-only counts stay comparable with the committed study): counting rule
— a gather (index, index_select, gather, embedding lookup) costs 1 FLOP per element it
writes (a memory move, counted as one operation), a scatter-add (index_add, scatter_add,
index_put with accumulate — the backward of a gather —, scatter_reduce, embedding backward)
costs 1 FLOP per source element (one addition or comparison each). Matmul FLOPs are 2 per
multiply-add, as FlopCounterMode counts them.
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


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _gather(*args, out_shape=None, **kwargs) -> int:
    return _numel(out_shape) if out_shape is not None else 0


def _index_add(self_shape, dim, index, source, *args, out_shape=None, **kwargs) -> int:
    return _numel(source)


def _index_put(self_shape, indices, values, accumulate=False, *args, out_shape=None, **kwargs) -> int:
    return _numel(values) if accumulate else 0  # a plain index_put is a write, counted by nothing else


def _scatter_src(self_shape, dim, index, src, *args, out_shape=None, **kwargs) -> int:
    return _numel(src)


def _embedding_backward(grad, indices, *args, out_shape=None, **kwargs) -> int:
    return _numel(grad)


def indexing_formulas() -> dict:
    """FlopCounterMode custom_mapping implementing the gather/scatter rule in the module docstring."""
    aten = torch.ops.aten
    table = {}
    for name, fn in (("index", _gather), ("index_select", _gather), ("gather", _gather), ("embedding", _gather),
                     ("index_add", _index_add), ("index_add_", _index_add), ("scatter_add", _scatter_src),
                     ("scatter_add_", _scatter_src), ("scatter_reduce", _scatter_src),
                     ("scatter_reduce_", _scatter_src), ("index_put", _index_put), ("index_put_", _index_put),
                     ("_index_put_impl_", _index_put), ("embedding_dense_backward", _embedding_backward)):
        packet = getattr(aten, name, None)  # FlopCounterMode looks formulas up by overload packet
        if packet is not None:
            table[packet] = fn
    return table


def step_flops_breakdown(model: torch.nn.Module, batch: Batch,
                         step_loss: Callable[[torch.nn.Module, Batch], torch.Tensor]) -> dict[str, int]:
    """{"matmul": ..., "indexing": ...} FLOPs of forward + loss + backward (rule: module docstring)."""
    clone = copy.deepcopy(model)
    clone.train()
    formulas = indexing_formulas()
    with FlopCounterMode(display=False, custom_mapping=formulas) as counter:
        step_loss(clone, batch).backward()
    counts = counter.get_flop_counts().get("Global", {})
    indexing = sum(int(v) for op, v in counts.items() if op in formulas)
    total = int(counter.get_total_flops())
    return {"matmul": total - indexing, "indexing": indexing}


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
