"""Evaluating a model on labelled structures: loss metrics and parity data.

Used by the training loop (validation every `val_every` epochs), by `python -m matscale
evaluate` and by the notebook. Conservative models differentiate the energy, so evaluation
runs with gradients enabled for them (`torch.enable_grad()`), and without otherwise.
Under DDP each process evaluates its share of the structures and the sums are all-reduced.
"""
from __future__ import annotations

import contextlib
from functools import partial
from typing import Sequence

import numpy as np
import torch

from matscale.data.batch import collate
from matscale.train.loss import LossMeter, LossScales, LossWeights, errors


def autocast(device: str | torch.device, precision: str):
    """bf16/fp16 autocast context for `device` (a no-op for precision 'none')."""
    if precision == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _batches(dataset, indices: Sequence[int], batch_size: int):
    load = partial(collate, labels=True)
    for start in range(0, len(indices), batch_size):
        yield load([dataset[int(i)] for i in indices[start:start + batch_size]])


def _forward(model, batch, device, precision):
    grad = bool(getattr(model, "conservative", False))
    with torch.set_grad_enabled(grad), autocast(device, precision):
        pred = model(batch)
    return {k: pred[k].detach().float() for k in ("energy", "forces", "stress")}


def _predictions(model: torch.nn.Module, dataset, indices, batch_size: int, device, precision: str):
    """Yield (batch on `device`, model output) over `dataset[indices]` (all by default) in eval
    mode; the model's train/eval mode is restored afterwards."""
    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices)
    was_training = model.training
    model.eval()
    try:
        for batch in _batches(dataset, indices, batch_size):
            batch = batch.to(device)
            yield batch, _forward(model, batch, device, precision)
    finally:
        model.train(was_training)


def evaluate(model: torch.nn.Module, dataset, weights: LossWeights, scales: LossScales, *,
             indices: Sequence[int] | None = None, batch_size: int = 32, device: str | torch.device = "cpu",
             precision: str = "none", reduce: bool = True) -> LossMeter:
    """Accumulated errors of `model` on `dataset[indices]` (all structures by default)."""
    meter = LossMeter(weights, scales)
    for batch, pred in _predictions(model, dataset, indices, batch_size, device, precision):
        meter.add(errors(pred, batch), batch.num_structures, batch.num_atoms)
    if reduce:
        meter.all_reduce()
    return meter


def parity(model: torch.nn.Module, dataset, *, indices: Sequence[int] | None = None, batch_size: int = 32,
           device: str | torch.device = "cpu", precision: str = "none") -> dict[str, np.ndarray]:
    """True and predicted values for parity plots, float64 numpy:

    energy_per_atom_true/pred (B,) eV/atom, forces_true/pred (ΣN, 3) eV/Å,
    stress_true/pred (B, 3, 3) eV/Å³, natoms (B,), numbers (ΣN,). A label a structure lacks
    is NaN in its `*_true` entries (drop those points before plotting).
    """
    out: dict[str, list] = {k: [] for k in ("energy_per_atom_true", "energy_per_atom_pred", "forces_true",
                                            "forces_pred", "stress_true", "stress_pred", "natoms", "numbers")}
    for batch, pred in _predictions(model, dataset, indices, batch_size, device, precision):
        n = batch.natoms.double()
        out["energy_per_atom_true"].append(batch.energy.double() / n)
        out["energy_per_atom_pred"].append(pred["energy"].double() / n)
        out["forces_true"].append(batch.forces.double())
        out["forces_pred"].append(pred["forces"].double())
        out["stress_true"].append(batch.stress.double())
        out["stress_pred"].append(pred["stress"].double())
        out["natoms"].append(batch.natoms)
        out["numbers"].append(batch.numbers)
    return {k: torch.cat(v).cpu().numpy() if v else np.zeros(0) for k, v in out.items()}
