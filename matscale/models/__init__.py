"""Model registry: every architecture by name, with a ladder of sizes.

Architectures live one per module and register themselves on import; the registry knows
which module holds which name, so `build("fcn", "s")` imports only `matscale.models.fcn`
(and never fairchem unless asked for `esen`/`escaip`).

    build(arch, size=None, **overrides) -> MaterialModel
    predict(model, atoms_list) -> {"energy": (B,), "forces": (ΣN, 3), "stress": (B, 3, 3)} numpy, eV / eV/Å / eV/Å³
    count_parameters(model) -> (total, non_embedding)
    architectures() -> list of names; sizes(arch) -> ordered list of size names
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from matscale.errors import ConfigError

# architecture name -> module that registers it (import order = listing order)
ARCH_MODULES: dict[str, str] = {
    "mean": "matscale.models.baselines",
    "linear": "matscale.models.baselines",
    "fcn": "matscale.models.fcn",
    "transformer": "matscale.models.transformer",
    "schnet": "matscale.models.schnet",
    "equiformer_v2": "matscale.models.equiformer_v2",
    "esen": "matscale.models.fairchem_peers",
    "escaip": "matscale.models.fairchem_peers",
}


@dataclass
class ArchSpec:
    name: str
    builder: Callable[..., torch.nn.Module]
    sizes: dict[str, dict]  # size name -> builder kwargs, smallest first
    description: str = ""
    default_size: str | None = None
    trainable: bool = True  # False for closed-form baselines (fitted, not trained by SGD)
    extra: dict = field(default_factory=dict)


_REGISTRY: dict[str, ArchSpec] = {}


def register(name: str, sizes: dict[str, dict], description: str = "", default_size: str | None = None,
             trainable: bool = True):
    """Class/function decorator adding an architecture with its size ladder."""
    def deco(builder):
        _REGISTRY[name] = ArchSpec(name, builder, dict(sizes), description,
                                   default_size or next(iter(sizes)), trainable)
        return builder
    return deco


def spec(arch: str) -> ArchSpec:
    if arch not in ARCH_MODULES:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCH_MODULES)}")
    if arch not in _REGISTRY:
        importlib.import_module(ARCH_MODULES[arch])
    if arch not in _REGISTRY:  # pragma: no cover - a module that forgot to register
        raise ConfigError(f"architecture {arch!r} is not available (module {ARCH_MODULES[arch]} did not register it)")
    return _REGISTRY[arch]


def architectures() -> list[str]:
    return list(ARCH_MODULES)


def sizes(arch: str) -> list[str]:
    return list(spec(arch).sizes)


def build(arch: str, size: str | None = None, **overrides) -> torch.nn.Module:
    """A freshly initialised model (seed torch first for reproducibility)."""
    s = spec(arch)
    size = size or s.default_size
    if size not in s.sizes:
        raise ConfigError(f"unknown size {size!r} for {arch}; choose one of: {', '.join(s.sizes)}")
    model = s.builder(**{**s.sizes[size], **overrides})
    model.arch, model.size = arch, size
    return model


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(total, non-embedding) trainable parameter counts; non-embedding is the paper's N."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = sum(p.numel() for p in params)
    emb_fn = getattr(model, "embedding_parameters", None)
    emb_ids = {id(p) for p in emb_fn()} if emb_fn else set()
    embedding = sum(p.numel() for p in params if id(p) in emb_ids)
    return total, total - embedding


def predict(model: torch.nn.Module, atoms_list: Sequence, batch_size: int = 16,
            device: str | torch.device | None = None) -> dict[str, np.ndarray]:
    """Energy (B,) eV, forces (ΣN, 3) eV/Å, stress (B, 3, 3) eV/Å³ for `ase.Atoms`, as float64 numpy."""
    from matscale.data.batch import collate

    device = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    out: dict[str, list[np.ndarray]] = {"energy": [], "forces": [], "stress": []}
    try:
        for start in range(0, len(atoms_list), batch_size):
            batch = collate(atoms_list[start:start + batch_size], labels=False).to(device)
            grad = bool(getattr(model, "conservative", False))
            with torch.set_grad_enabled(grad):
                pred = model(batch)
            for key in out:
                out[key].append(pred[key].detach().double().cpu().numpy())
    finally:
        model.train(was_training)
    if not atoms_list:
        return {"energy": np.zeros(0), "forces": np.zeros((0, 3)), "stress": np.zeros((0, 3, 3))}
    return {k: np.concatenate(v) for k, v in out.items()}
