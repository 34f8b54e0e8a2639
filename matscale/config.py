"""One `TrainConfig`: every training setting, with its default, unit and validation.

The CLI (`python -m matscale train --help`) is generated from the field metadata below and
`book/train.ipynb`'s parameters are checked against the field names, so each setting is
defined exactly once, here. `validate()` returns a resolved copy (size and device filled in)
or raises `ConfigError` with one message saying what is wrong and how to fix it.

The run id (`run_id()`) is a readable prefix plus a hash of the settings that change results
(fields with `hashed=True`): device, worker count, caching, the run root and `vis_every` do
not; `compile` enters it only when on. The dataset enters through `data_fingerprint`, not
through the `data` path: `validate()` resolves `data` (None: the default dataset, whose id is derived without generating it) to
its fingerprint, so the same settings on two datasets are two runs, and a dataset moved to
another folder or machine keeps its runs. A recorded fingerprint (a run's config.json) is
kept only when its dataset is not reachable here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from matscale.errors import ConfigError

PRECISIONS = ("none", "bf16", "fp16")


def _f(default, help: str, unit: str = "", choices=None, hashed: bool = True, group: str = "training"):
    """A dataclass field carrying CLI help, unit and whether it enters the run id."""
    meta = {"help": help, "unit": unit, "choices": choices, "hashed": hashed, "group": group}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    # -- what to train -------------------------------------------------------------------
    arch: str = _f("schnet", "architecture (see `python -m matscale models`)", group="model")
    size: str | None = _f(None, "size on the architecture's ladder; default: its smallest/default size",
                          group="model")
    # -- data ----------------------------------------------------------------------------
    data: str | None = _f(None, "dataset root (OMat24 layout <root>/<split>/<subset>/) or a named dataset "
                                "(omat24-teacher-v1); default: the embedded EMT dataset", hashed=False, group="data")
    data_fingerprint: str | None = _f(None, "id of the dataset, filled in by validate() from data (see "
                                            "matscale.data.fingerprint); it enters the run id, the path does not",
                                      group="data")
    subsets: tuple[str, ...] | None = _f(None, "training/validation subsets (comma-separated); default: all",
                                         group="data")
    frac: float = _f(0.01, "fraction of the training split to train on (nested across fractions)",
                     unit="fraction, (0, 1]", group="data")
    frac_by: str = _f("parent", "what frac draws: whole parent trajectories (parent) or single structures "
                                "(structure: reaches below one parent per subset)", choices=("parent", "structure"),
                      hashed="unless_default", group="data")
    val_frac: float = _f(0.1, "fraction of the validation split to validate on (fixed seed 0, "
                              "the same for every run)", unit="fraction, (0, 1]", group="data")
    val_per_parent: int = _f(0, "validate on this many frames of EVERY validation parent (fixed seed 0) "
                                "instead of val_frac of the parents (0: val_frac)", unit="frames",
                             hashed="unless_default", group="data")
    seed: int = _f(0, "seed for the data subset, initialisation and data order", group="data")
    cache_data: bool = _f(True, "keep decoded structures in memory", hashed=False, group="data")
    num_workers: int = _f(0, "DataLoader worker processes", hashed=False, group="data")
    graph_cache_mb: float = _f(256.0, "memory bound of the per-structure radius-graph cache (0: off; off under "
                                      "rotation_augment); results are identical either way",
                               unit="MiB", hashed=False, group="data")
    # -- optimisation --------------------------------------------------------------------
    epochs: int = _f(15, "passes over the training subset (unused when max_steps > 0)", unit="epochs")
    max_steps: int = _f(0, "train exactly this many optimiser steps, as many passes as that takes (the last "
                           "one partial), so runs on different fractions take equal steps (0: epochs decide)",
                        unit="steps", hashed="unless_default")
    batch_size: int = _f(16, "global batch (all processes together)", unit="structures")
    lr: float = _f(1e-3, "peak learning rate of AdamW (after warm-up)")
    warmup_frac: float = _f(0.01, "share of optimiser steps spent warming up linearly", unit="fraction, [0, 1)")
    warmup_start: float = _f(0.2, "learning rate at step 0 as a multiple of lr", unit="× lr")
    min_lr_factor: float = _f(0.01, "learning rate at the last step as a multiple of lr (cosine)", unit="× lr")
    weight_decay: float = _f(1e-3, "AdamW decoupled weight decay (matrices only)")
    grad_clip: float = _f(10.0, "clip the global gradient norm to this value (0: off)")
    energy_weight: float = _f(2.5, "loss weight of the energy-per-atom MAE", group="loss")
    force_weight: float = _f(20.0, "loss weight of the force L2MAE", group="loss")
    stress_iso_weight: float = _f(5.0, "loss weight of the isotropic-stress MAE", group="loss")
    stress_aniso_weight: float = _f(5.0, "loss weight of the anisotropic-stress MAE", group="loss")
    rotation_augment: bool = _f(False, "rotate each training batch randomly (for unconstrained models)")
    precision: str = _f("none", "mixed precision: bf16 autocast (CPU/GPU) or fp16 + GradScaler (GPU)",
                        choices=PRECISIONS)
    compile: bool = _f(False, "torch.compile the model (inductor, CPU or CUDA; see bench/bench_engine.py for "
                              "where it pays); enters the run id only when on (kernels round differently)",
                       hashed="unless_default", group="system")
    # -- validation and stopping ---------------------------------------------------------
    val_every: int = _f(1, "validate every N epochs (and after the last)", unit="epochs", group="validation")
    val_every_steps: int = _f(0, "validate every N optimiser steps instead (and after the last; 0: val_every "
                                 "epochs decide)", unit="steps", hashed="unless_default", group="validation")
    vis_every: int = _f(0, "write parity data of up to 64 val structures every N epochs (0: off)",
                        unit="epochs", hashed=False, group="validation")
    patience: int = _f(0, "stop after this many validations without improvement (0: never)",
                       unit="validations", group="validation")
    # -- where ---------------------------------------------------------------------------
    device: str = _f("auto", "cpu, cuda, cuda:N or auto (cuda when available)", hashed=False, group="system")
    run_root: str = _f("runs", "folder holding run folders (relative: to the repository root)",
                       hashed=False, group="system")
    tensorboard: bool = _f(False, "also write TensorBoard scalars to <run_dir>/tensorboard/ "
                                  "(needs the tensorboard package)", hashed=False, group="system")

    def __post_init__(self) -> None:
        # accept "a,b" or any sequence for subsets (papermill and the CLI pass strings)
        if self.subsets is not None and not isinstance(self.subsets, tuple):
            object.__setattr__(self, "subsets", _as_subsets(self.subsets))

    # ------------------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def coerce(cls, name: str, value: Any, where: str | None = None) -> Any:
        """`value` (from YAML, TOML, JSON, papermill or a command line) as the type of field
        `name`: "1e-3" -> 0.001, 2.0 -> 2 for ints, "a,b" for subsets; bools must be bools.
        ConfigError naming the setting (prefixed by `where`) and what was expected."""
        return _coerce(name, value, f"{where}: " if where else "")

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str | None = None) -> "TrainConfig":
        """Build from a dict (config.json's "config", a sweep point, a --config file), every
        value coerced to its field's type; unknown keys are an error."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ConfigError(f"{where + ': ' if where else ''}unknown setting(s) {', '.join(unknown)}; "
                              f"known: {', '.join(cls.field_names())}")
        return cls(**{k: cls.coerce(k, v, where) for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if out["subsets"] is not None:
            out["subsets"] = list(out["subsets"])
        return out

    def replace(self, **changes) -> "TrainConfig":
        if "subsets" in changes and changes["subsets"] is not None:
            changes["subsets"] = _as_subsets(changes["subsets"])
        return dataclasses.replace(self, **changes)

    # -- validation ----------------------------------------------------------------------
    def validate(self, check_device: bool = True) -> "TrainConfig":
        """A resolved copy (size, device) or `ConfigError` naming the bad setting."""
        from matscale import models

        c = self
        if not isinstance(c.arch, str) or not c.arch:
            raise ConfigError("arch must be a non-empty string")
        try:
            spec = models.spec(c.arch)  # ConfigError for unknown architectures
        except ImportError as exc:
            raise ConfigError(f"architecture {c.arch!r} is not available in this installation ({exc})") from exc
        size = c.size if c.size is not None else spec.default_size
        if size not in spec.sizes:
            raise ConfigError(f"unknown size {size!r} for {c.arch}; choose one of: {', '.join(spec.sizes)}")
        _check(0 < _num(c, "frac") <= 1, f"frac must be in (0, 1], got {c.frac}")
        _check(0 < _num(c, "val_frac") <= 1, f"val_frac must be in (0, 1], got {c.val_frac}")
        _check(_int(c, "seed") >= 0, f"seed must be >= 0, got {c.seed}")
        _check(_int(c, "epochs") >= 1, f"epochs must be >= 1, got {c.epochs}")
        _check(_int(c, "batch_size") >= 1, f"batch_size must be >= 1 structure, got {c.batch_size}")
        _check(_num(c, "lr") > 0, f"lr must be > 0, got {c.lr}")
        _check(0 <= _num(c, "warmup_frac") < 1, f"warmup_frac must be in [0, 1), got {c.warmup_frac}")
        _check(0 < _num(c, "warmup_start") <= 1, f"warmup_start must be in (0, 1], got {c.warmup_start}")
        _check(0 <= _num(c, "min_lr_factor") <= 1, f"min_lr_factor must be in [0, 1], got {c.min_lr_factor}")
        _check(_num(c, "weight_decay") >= 0, f"weight_decay must be >= 0, got {c.weight_decay}")
        _check(_num(c, "grad_clip") >= 0, f"grad_clip must be >= 0 (0 turns clipping off), got {c.grad_clip}")
        weights = [_num(c, k) for k in ("energy_weight", "force_weight", "stress_iso_weight", "stress_aniso_weight")]
        _check(all(w >= 0 for w in weights) and sum(weights) > 0,
               "loss weights must be >= 0 and not all zero")
        _check(_int(c, "val_every") >= 1, f"val_every must be >= 1 epoch, got {c.val_every}")
        _check(_int(c, "max_steps") >= 0, f"max_steps must be >= 0 (0: epochs decide), got {c.max_steps}")
        _check(_int(c, "val_every_steps") >= 0, f"val_every_steps must be >= 0 (0: val_every epochs), "
                                                f"got {c.val_every_steps}")
        _check(_int(c, "val_per_parent") >= 0, f"val_per_parent must be >= 0 frames (0: val_frac), "
                                               f"got {c.val_per_parent}")
        frac_by = _field_choices("frac_by")
        _check(c.frac_by in frac_by, f"frac_by must be one of {', '.join(frac_by)}, got {c.frac_by!r}")
        _check(_int(c, "vis_every") >= 0, f"vis_every must be >= 0 (0: off), got {c.vis_every}")
        _check(_int(c, "patience") >= 0, f"patience must be >= 0 (0: no early stopping), got {c.patience}")
        _check(_int(c, "num_workers") >= 0, f"num_workers must be >= 0, got {c.num_workers}")
        _check(_num(c, "graph_cache_mb") >= 0, f"graph_cache_mb must be >= 0 MiB (0: off), got {c.graph_cache_mb}")
        _check(isinstance(c.compile, bool), f"compile must be true or false, got {c.compile!r}")
        _check(c.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {c.precision!r}")
        _check(isinstance(c.run_root, str) and c.run_root != "", "run_root must be a folder path")
        device = resolve_device(c.device) if check_device else c.device
        if check_device:
            check_precision(c.precision, device)
        return c.replace(size=size, device=device, data_fingerprint=_resolve_fingerprint(c))

    # -- identity ------------------------------------------------------------------------
    def result_settings(self) -> dict[str, Any]:
        """The settings that change results (they define the run id)."""
        d = self.to_dict()
        # hashed="unless_default": a later setting that keeps old run ids while it is at its default
        return {f.name: d[f.name] for f in fields(self) if f.metadata.get("hashed", True)
                and not (f.metadata.get("hashed") == "unless_default" and d[f.name] == f.default)}

    def run_id(self) -> str:
        """Readable prefix + 8 hex digits of the hash of `result_settings()` (the dataset
        fingerprint resolved first when unset, so `run_id()` == `validate().run_id()`)."""
        settings = self.result_settings()
        if settings["data_fingerprint"] is None:
            try:
                settings["data_fingerprint"] = _resolve_fingerprint(self)
            except ConfigError:  # an invalid config still gets an id (to report it by)
                settings["data_fingerprint"] = f"unresolved:{self.data}"
        blob = json.dumps(settings, sort_keys=True, default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:8]
        size = self.size if self.size is not None else "default"
        return f"{self.arch}-{size}-frac{self.frac:g}-seed{self.seed}-{digest}"


def _field_choices(name: str) -> tuple:
    return next(f.metadata["choices"] for f in fields(TrainConfig) if f.name == name)


def _resolve_fingerprint(c: TrainConfig) -> str:
    """The fingerprint of `c.data` (the default dataset when None); a recorded one when the
    folder is not here (e.g. reading runs trained elsewhere); else ConfigError."""
    from matscale.data.fingerprint import fingerprint
    from matscale.errors import DataError

    if c.data_fingerprint is not None and str(c.data_fingerprint).startswith("memory-"):
        return c.data_fingerprint  # in-memory data (train(train_set=...)): nothing on disk to check
    try:
        return fingerprint(c.data)
    except DataError as exc:
        if c.data_fingerprint is not None:
            return c.data_fingerprint
        raise ConfigError(str(exc)) from exc


def _as_subsets(value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [s for s in value.split(",")]
    out = tuple(str(s).strip() for s in value if str(s).strip())
    if not out:
        raise ConfigError("subsets must name at least one subset (or be left unset for all)")
    return out


_TYPES = {f.name: str(f.type).replace(" ", "") for f in fields(TrainConfig)}


def _coerce(name: str, value: Any, where: str) -> Any:
    if name not in _TYPES:
        raise ConfigError(f"{where}{name!r} is not a training setting; known: {', '.join(_TYPES)}")
    kind = _TYPES[name]
    if value is None:
        if kind.endswith("|None"):
            return None
        raise ConfigError(f"{where}{name} cannot be empty (null)")
    base = kind.removesuffix("|None")
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}{name} must be true or false, got {value!r}")
    if base == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        raise ConfigError(f"{where}{name} must be a whole number, got {value!r}")
    if base == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            number = float(value) if isinstance(value, str) else math.nan
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
        raise ConfigError(f"{where}{name} must be a number, got {value!r}")
    if base == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}{name} must be a string, got {value!r}")
    if base.startswith("tuple[str"):
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return _as_subsets(value)
        raise ConfigError(f"{where}{name} must be a list of names or a comma-separated string, got {value!r}")
    raise ConfigError(f"{where}cannot read setting {name} of type {kind}")  # pragma: no cover


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _num(c: TrainConfig, name: str) -> float:
    value = getattr(c, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _int(c: TrainConfig, name: str) -> int:
    value = getattr(c, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    return value


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; checks that a CUDA device exists."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device; use cpu, cuda, cuda:N or auto") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for but no CUDA GPU is available; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} does not exist ({torch.cuda.device_count()} GPU(s) visible)")
    elif dev.type != "cpu":
        raise ConfigError(f"device {device!r} is not supported; use cpu, cuda, cuda:N or auto")
    return str(dev)


def check_precision(precision: str, device: str) -> None:
    """ConfigError when `device` cannot run `precision`."""
    import torch

    kind = torch.device(device).type
    if precision == "fp16" and kind != "cuda":
        raise ConfigError("precision fp16 needs a CUDA GPU (GradScaler); on CPU use --precision bf16 or none")
    if precision == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU cannot run bf16; use --precision fp16 or none")
