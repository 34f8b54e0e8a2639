"""Sweep files: a grid of `TrainConfig`s written as YAML or TOML (or a dict in a notebook).

    name: tiny                    # optional; default: the file's stem
    base:                         # TrainConfig fields shared by every point
      epochs: 1
      batch_size: 8
    grid:                         # cartesian product over these fields (lists = alternatives)
      arch:                       # a mapping = one sub-grid per value (sizes differ per arch)
        fcn: {size: [xs, s]}
        transformer: {size: [xs], lr: [1e-3, 3e-4]}
        linear:                   # no sub-grid: the architecture's default size
      frac: [0.1, 1.0]
      seed: [0, 1]
    points:                       # optional explicit extra points (base applies, grid does not)
      - {arch: mean, frac: 1.0}
    executor: local               # or slurm (the command line's --executor wins)
    runner: cli                   # or papermill: execute `notebook` (default book/train.ipynb) per point
    notebook: ../train.ipynb      # papermill input; relative to this file
    local: {max_parallel: 2, threads_per_run: 1}
    slurm: {partition: gpu, time: 120, gpus_per_node: 1, cpus_per_task: 8, mem_gb: 32,
            array_parallelism: 16, additional_parameters: {constraint: a100}}

`role` (in `grid` or `points`, not a training setting, not in the run id) tags points for the
study pages: "main" (the default: the scaling series), or e.g. "lr" (a learning-rate check's
extra rates) and "budget" (a budget-sensitivity check); a point listed twice keeps its first role.

Every other key in `base`, `grid` and `points` must be a `TrainConfig` field; values are coerced to
the field's type (YAML reads `1e-3` as a string, TOML has no null), so a point's run id is
the one `python -m matscale train` computes for the same settings. In `grid`, a list always
means alternatives: a list-valued setting (`subsets`) is written as a list of lists or as a
comma-separated string.
"""
from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from matscale.config import TrainConfig
from matscale.errors import ConfigError

TOP_KEYS = ("name", "base", "grid", "points", "local", "slurm", "runner", "executor", "notebook")
RUNNERS = ("cli", "papermill")
EXECUTORS = ("local", "slurm")
LOCAL_KEYS = ("max_parallel", "threads_per_run")
ROLE = "role"  # a point's tag for the study pages; not a training setting
MAIN = "main"


@dataclass(frozen=True)
class InvalidPoint:
    """A grid point with a value of the wrong type: recorded as failed with `error`, never run."""

    settings: dict[str, Any]  # the point's settings, bad values as written
    error: str


@dataclass(frozen=True)
class _Bad:
    raw: Any
    error: str


@dataclass
class SweepSpec:
    """A parsed sweep: its points (unvalidated `TrainConfig`s), points that could not be read
    (`invalid`: a bad-typed grid value rejects its own points only) and executor settings."""

    name: str
    configs: list[TrainConfig]
    invalid: list[InvalidPoint] = field(default_factory=list)
    local: dict[str, Any] = field(default_factory=dict)
    slurm: dict[str, Any] = field(default_factory=dict)
    runner: str = "cli"
    executor: str = "local"
    notebook: str | None = None
    source: str | None = None
    roles: list[str] = field(default_factory=list)  # one per config: "main" or the point's `role`

    def role(self, i: int) -> str:
        return self.roles[i] if i < len(self.roles) else MAIN


# -- reading --------------------------------------------------------------------------------
def read_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a .yaml/.yml/.toml sweep file (ConfigError when unreadable)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist; pass a .yaml or .toml file (see book/sweeps/)")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            raw = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            raw = yaml.safe_load(text)
        else:
            raise ConfigError(f"sweep file {path} must end in .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"sweep file {path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep file {path} must hold a mapping with keys like base, grid, points")
    raw.setdefault("name", path.stem)
    return raw


def load(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> SweepSpec:
    """Parse a sweep file or dict into a `SweepSpec`; `overrides` update `base` (e.g. CLI --set)."""
    if isinstance(source, Mapping):
        raw, where = dict(source), "sweep"
    else:
        raw, where = read_file(source), str(source)
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key(s) {', '.join(unknown)}; allowed: {', '.join(TOP_KEYS)}")
    base = _section(raw, "base", where)
    base.update(overrides or {})
    base = {k: coerce(k, v, f"{where}: base.{k}") for k, v in base.items()}
    grid = _section(raw, "grid", where)
    points = raw.get("points") or []
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise ConfigError(f"{where}: points must be a list of mappings of TrainConfig settings")

    combos = expand_grid(grid, f"{where}: grid") if grid or not points else []
    combos += [{k: v if k == ROLE else coerce(k, v, f"{where}: points[{i}].{k}") for k, v in p.items()}
               for i, p in enumerate(points)]
    configs, invalid, roles = [], [], []
    for combo in combos:
        role = str(combo.pop(ROLE, MAIN))
        bad = [v.error for v in combo.values() if isinstance(v, _Bad)]
        if bad:
            point = InvalidPoint({**base, **{k: v.raw if isinstance(v, _Bad) else v for k, v in combo.items()}},
                                 "; ".join(bad))
            if point not in invalid:
                invalid.append(point)
            continue
        try:
            configs.append(TrainConfig.from_dict({**base, **combo}))
            roles.append(role)
        except TypeError as exc:  # pragma: no cover - from_dict checks names; kept for safety
            raise ConfigError(f"{where}: {exc}") from exc
    if invalid and not configs:  # nothing at all can run: a mistake in the file, not in one point
        raise ConfigError(invalid[0].error)

    local = _section(raw, "local", where)
    bad = sorted(set(local) - set(LOCAL_KEYS))
    if bad:
        raise ConfigError(f"{where}: unknown local setting(s) {', '.join(bad)}; allowed: {', '.join(LOCAL_KEYS)}")
    for key, value in local.items():
        if key == "threads_per_run" and value == "auto":  # LocalExecutor.auto_layout decides
            continue
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{where}: local.{key} must be a whole number >= 1"
                              f"{' or auto' if key == 'threads_per_run' else ''}, got {value!r}")
    runner = raw.get("runner", "cli")
    if runner not in RUNNERS:
        raise ConfigError(f"{where}: runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
    executor = raw.get("executor", "local")
    if executor not in EXECUTORS:
        raise ConfigError(f"{where}: executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    name = str(raw.get("name") or "sweep")
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ConfigError(f"{where}: name {name!r} must use letters, digits, '-', '_' or '.' only")
    configs, roles = _dedupe_with_roles(configs, roles)
    return SweepSpec(name=name, configs=configs, roles=roles, invalid=invalid, local=local, slurm=_section(raw, "slurm", where),
                     runner=runner, executor=executor, notebook=_notebook(raw.get("notebook"), source, where),
                     source=None if isinstance(source, Mapping) else str(source))


def expand(source: str | Path | Mapping[str, Any] | SweepSpec) -> list[TrainConfig]:
    """Every point of a sweep file / dict as a `TrainConfig` (duplicates removed, order kept)."""
    return source.configs if isinstance(source, SweepSpec) else load(source).configs


def _notebook(value, source, where: str) -> str | None:
    """The papermill input notebook; a relative path is taken from the sweep file's folder."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: notebook must be a path to an .ipynb file")
    path = Path(value).expanduser()
    if not path.is_absolute() and not isinstance(source, Mapping):
        path = Path(source).parent / path
    return str(path)


def _section(raw: dict, key: str, where: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a mapping, got {type(value).__name__}")
    return dict(value)


# -- the grid ---------------------------------------------------------------------------------
def expand_grid(grid: Mapping[str, Any], where: str = "grid") -> list[dict[str, Any]]:
    """Cartesian product of a (possibly nested) grid; each result maps field -> one value.

    A field's value is a list (alternatives), a scalar (one value), or a mapping from each
    value to a sub-grid that applies only with that value (or null for none)."""
    combos: list[dict[str, Any]] = [{}]
    for key, value in grid.items():
        if key == ROLE:
            if not isinstance(value, str):
                raise ConfigError(f"{where}.role must be one word (e.g. lr, budget), got {value!r}")
            combos = [{**c, ROLE: value} for c in combos]
            continue
        check_field(key, where)
        options: list[dict[str, Any]] = []
        if isinstance(value, Mapping):
            for v, sub in value.items():
                here = f"{where}.{key}.{v}"
                if sub is not None and not isinstance(sub, Mapping):
                    raise ConfigError(f"{here} must be a mapping of settings (a sub-grid) or empty")
                val = coerce(key, v, here)
                options += [{key: val, **s} for s in expand_grid(sub or {}, here)]
        elif isinstance(value, list):
            options = [{key: _coerce_or_bad(key, v, f"{where}.{key}")} for v in value]
        else:
            options = [{key: _coerce_or_bad(key, value, f"{where}.{key}")}]
        if not options:
            raise ConfigError(f"{where}.{key} lists no values; give at least one or remove it")
        new = []
        for combo, option in itertools.product(combos, options):
            clash = sorted(set(combo) & set(option))
            if clash:
                raise ConfigError(f"{where}: {', '.join(clash)} is set twice along one branch of the grid; "
                                  "set it in one place (top level or inside each sub-grid)")
            new.append({**combo, **option})
        combos = new
    return combos


def _coerce_or_bad(name: str, value: Any, where: str) -> Any:
    """`coerce`, but a value of the wrong type becomes a marker that invalidates only its points."""
    check_field(name, where)  # an unknown setting name is a mistake in the whole file
    try:
        return coerce(name, value, where)
    except ConfigError as exc:
        return _Bad(value, str(exc))


def dedupe(configs: list[TrainConfig]) -> list[TrainConfig]:
    """Drop repeated points (identical settings), keeping the first occurrence."""
    return _dedupe_with_roles(configs, [MAIN] * len(configs))[0]


def _dedupe_with_roles(configs: list[TrainConfig], roles: list[str]) -> tuple[list[TrainConfig], list[str]]:
    seen, out, out_roles = set(), [], []
    for c, role in zip(configs, roles):
        key = repr(sorted(c.to_dict().items()))
        if key not in seen:
            seen.add(key)
            out.append(c)
            out_roles.append(role)
    return out, out_roles


# -- values -------------------------------------------------------------------------------------
def check_field(name: Any, where: str) -> None:
    if name not in TrainConfig.field_names():
        raise ConfigError(f"{where}: {name!r} is not a training setting; known: {', '.join(TrainConfig.field_names())}")


def coerce(name: str, value: Any, where: str) -> Any:
    """`TrainConfig.coerce` (the one place values are typed), with this sweep's location."""
    return TrainConfig.coerce(name, value, where)
