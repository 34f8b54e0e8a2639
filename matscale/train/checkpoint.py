"""Checkpoints that resume a run exactly and load with `torch.load(weights_only=True)`.

A checkpoint is a dict of tensors and plain Python values only:
    format, run_id, config (dict), epoch (epochs completed), step, samples_seen, atoms_seen,
    flops, wall_s, model (state_dict, normalisation buffers included), optimizer, scheduler,
    scaler, rng {torch, cuda, numpy, python, augment}, best {val_loss, epoch, step,
    bad_validations}, normalization, flop_model, metrics (rows so far)
Data order needs no extra state: epoch e's permutation is drawn from (seed, e).
Writes are atomic (temp file + rename), so a kill never leaves half a checkpoint.
"""
from __future__ import annotations

import io
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matscale.errors import CheckpointError
from matscale.runs import atomic_write_bytes

FORMAT = 1


def rng_state(augment: torch.Generator | None = None) -> dict[str, Any]:
    """Every random state a training step draws from, as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [py[0], list(py[1]), py[2]],
        "augment": augment.get_state() if augment is not None else None,
    }


def set_rng_state(state: dict[str, Any], augment: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if augment is not None and state.get("augment") is not None:
        augment.set_state(state["augment"])


def save(path: str | Path, payload: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: str | Path, run_id: str | None = None, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; `CheckpointError` if missing, corrupt or from another run."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; train the run first (or drop --resume)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {path} {_why(exc)}; delete it and re-run with --force") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model" not in ckpt:
        raise CheckpointError(f"checkpoint {path} is not a matscale checkpoint (format {FORMAT}); "
                              "re-run with --force to start over")
    if run_id is not None and ckpt.get("run_id") != run_id:
        raise CheckpointError(f"checkpoint {path} belongs to run {ckpt.get('run_id')!r}, not {run_id!r}: "
                              "its settings differ; re-run with --force to start over")
    return ckpt


def _why(exc: BaseException) -> str:
    """Why torch could not load a checkpoint, in our words: torch's own text advises loading with
    weights_only=False, which would execute whatever the file contains, so it is never passed on."""
    text = str(exc)
    if "Unsupported global" in text or "GLOBAL" in text:
        return ("holds objects other than tensors and plain values (not a matscale checkpoint, possibly "
                "unsafe); matscale only loads plain checkpoints and will not unpickle it")
    if isinstance(exc, EOFError) or "unexpected EOF" in text or "failed finding central directory" in text:
        return "is truncated or corrupt (an interrupted write or copy)"
    if "weights_only" in text or "Weights only" in text:  # torch's advice is dropped; keep only its finding
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
        return f"is corrupt or not a matscale checkpoint ({detail[0][:120] if detail else 'unreadable'})"
    first = text.splitlines()[0][:200] if text else ""
    return f"is corrupt or not a matscale checkpoint ({type(exc).__name__}{': ' + first if first else ''})"


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path = "checkpoint") -> None:
    """load_state_dict with a clear error when the weights do not fit the architecture."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"{path}: weights do not match the model {getattr(model, 'arch', '')}"
                              f"-{getattr(model, 'size', '')} ({first}...); the checkpoint belongs to "
                              "another architecture or size") from exc


def missing_weights_message(run, path: Path) -> str:
    """Why a run folder has no weights and how to get them (checkpoints are git-ignored)."""
    summary = run.read_summary() if run.summary_path.exists() else None
    status = (summary or {}).get("status")
    if status in ("completed", "stopped_early"):
        return (f"run {run.run_id} finished but has no {path.name} here: checkpoints are not committed to git "
                "(the default study ships best.pt only for its best run per architecture). Recreate the weights "
                f"with `python -m matscale train --config {run.config_path} --force --run-root {run.path.parent}` "
                "(this rewrites the run's results with the new training's, which on CPU match closely but not "
                "always bit for bit), or pick a run that has them: `python -m matscale runs ls` (column ckpt)")
    return (f"run {run.run_id} has no {path.name} (status {status or 'unknown'}): train it first, e.g. "
            f"`python -m matscale train --config {run.config_path} --resume --run-root {run.path.parent}`")


def load_model(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"):
    """(model in eval mode, TrainConfig, checkpoint dict) of a run folder's `which` checkpoint.

    which: "best" or "last" (or a path to a .pt file). The architecture and size come from
    the run's config.json; the checkpoint must belong to the same run id.
    """
    from matscale import models
    from matscale.config import TrainConfig
    from matscale.runs import RunDir

    run = RunDir(run_dir)
    if not run.config_path.exists():
        raise CheckpointError(f"{run.path} is not a run folder (no config.json); pass a folder under runs/")
    meta = run.read_config()
    config = TrainConfig.from_dict(meta["config"])
    path = Path(which) if str(which).endswith(".pt") else run.checkpoints / f"{which}.pt"
    if not path.exists():
        raise CheckpointError(missing_weights_message(run, path))
    ckpt = load(path, run_id=meta.get("run_id", run.run_id), map_location=device)
    model = models.build(config.arch, config.size)
    load_model_state(model, ckpt["model"], path)
    model.to(device).eval()
    return model, config, ckpt
