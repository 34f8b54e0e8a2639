"""Opt-in `torch.compile` of a model's neural part (TrainConfig `compile`).

`compile_model(model)` replaces `model.compute` (the batch -> normalised outputs function
every architecture implements) by `torch.compile(model.compute, dynamic=True)`: batch sizes
and atom counts change every step, so shapes are symbolic from the start instead of
recompiling per shape. The neighbour list (numpy) and the planning of packed attention run
outside the compiled graphs (graph breaks); unit conversion, conservative derivatives and the
loss stay eager. Backend: inductor (CPU needs a C compiler; CUDA uses Triton).

Conservative models (SchNet: forces and stress by autograd inside the forward, differentiated
again by the loss) need double backward through the compiled graph, which AOTAutograd does
not support: they are refused with a clear message. Any other compile failure surfaces at the
first step, re-raised as a `MatscaleError` naming the architecture and how to go on (train
without --compile). Compiled kernels round differently from eager ones, so `compile` enters
the run id when on. Where it pays (compile seconds vs steady-state gain): bench/bench_compile.py;
on this project's 2-core CPU machine nowhere (fcn 0.90x after a 7 s compile, transformer hits an
inductor bug, EquiformerV2 compiles for minutes), so the default study leaves it off.
"""
from __future__ import annotations

import torch

from matscale.errors import ConfigError, MatscaleError


_COMPILER_PATHS = ("torch/_dynamo", "torch/_inductor", "torchinductor", "torch/_functorch/_aot_autograd", "torch/fx")


def _is_compile_error(exc: BaseException) -> bool:
    """Raised by dynamo/inductor or by code they generated (e.g. a NameError in a generated kernel)."""
    mod = type(exc).__module__ or ""
    if mod.startswith(("torch._dynamo", "torch._inductor", "torch.fx")):
        return True
    tb = exc.__traceback__
    while tb is not None:
        if any(p in tb.tb_frame.f_code.co_filename.replace("\\", "/") for p in _COMPILER_PATHS):
            return True
        tb = tb.tb_next
    return False


class _Guarded:
    """The compiled function; compile errors become one clear MatscaleError."""

    def __init__(self, fn, label: str) -> None:
        self.fn, self.label = fn, label

    def __call__(self, *args, **kwargs):
        try:
            return self.fn(*args, **kwargs)
        except Exception as exc:
            if not _is_compile_error(exc):
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise MatscaleError(f"torch.compile failed for {self.label} ({type(exc).__name__}: {first}); "
                                "train without --compile (compile: false)") from exc


def compile_model(model: torch.nn.Module, mode: str | None = None) -> torch.nn.Module:
    """Compile `model.compute` in place (see the module docstring); returns `model`."""
    label = f"{getattr(model, 'arch', '') or type(model).__name__}-{getattr(model, 'size', '')}".rstrip("-")
    if getattr(model, "conservative", False):
        raise ConfigError(f"compile is not available for {label}: it computes forces and stress by autograd "
                          "inside the forward, and torch.compile cannot differentiate that twice (double "
                          "backward); train it without --compile")
    if not hasattr(model, "compute"):
        raise ConfigError(f"compile needs a matscale model with a compute(batch) method, got {type(model).__name__}")
    try:
        compiled = torch.compile(model.compute, dynamic=True, mode=mode)
    except Exception as exc:  # e.g. an unsupported Python version or platform
        raise ConfigError(f"torch.compile is not available here ({type(exc).__name__}: {exc}); "
                          "train without --compile") from exc
    model.compute = _Guarded(compiled, label)  # instance attribute shadows the method
    return model


def uncompile(model: torch.nn.Module) -> torch.nn.Module:
    """Undo `compile_model` (back to the class's eager compute)."""
    model.__dict__.pop("compute", None)
    return model
