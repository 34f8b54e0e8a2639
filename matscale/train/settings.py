"""Settings files for `python -m matscale train --config FILE`: YAML, TOML or JSON.

The file holds TrainConfig fields by name, either at the top level or under a "config" key (so
a run's own config.json can be passed back in); the suffix picks the format, as for sweep files.

    read_settings("point.yaml") -> {"arch": "fcn", "epochs": 3, ...}
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import yaml

from matscale.errors import ConfigError

SUFFIXES = {".yaml": "YAML", ".yml": "YAML", ".toml": "TOML", ".json": "JSON"}


def read_settings(path: str | Path) -> dict[str, Any]:
    """The settings mapping of a .yaml/.yml/.toml/.json file (ConfigError naming the problem)."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"--config {path}: settings files must be YAML, TOML or JSON "
                          f"(ending in {', '.join(SUFFIXES)})")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read --config {path}: {exc.strerror or exc}") from exc
    try:
        if kind == "TOML":
            raw = tomllib.loads(text)
        elif kind == "YAML":
            raw = yaml.safe_load(text)
        else:
            raw = json.loads(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--config {path} is not valid {kind}: {first}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path} must hold a mapping of settings (name: value), "
                          f"not a {type(raw).__name__}")
    values = raw.get("config", raw) if isinstance(raw.get("config"), dict) else raw
    return dict(values)
