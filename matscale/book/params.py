"""Notebook parameters -> `TrainConfig`, by field name.

`book/train.ipynb`'s parameters cell declares typed values (`frac: float = 0.01`, `data: str =
""`, ...) so that papermill parses them and `papermill --help-notebook` shows their types.
Papermill cannot pass None, so an empty string stands for "the field's default" (for `data`:
the embedded dataset; for `subsets`: all of them). `train_config(globals())` picks every
TrainConfig field name out of the notebook's namespace and builds the config from them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from matscale.config import TrainConfig


def train_config(namespace: Mapping[str, Any], **overrides: Any) -> TrainConfig:
    """A TrainConfig from the TrainConfig fields named in `namespace` (e.g. `globals()`).

    Empty strings become the field's default; `overrides` win over the namespace. Not yet
    validated: call `.validate()`.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                if f.default is not dataclasses.MISSING}
    values = {k: namespace[k] for k in TrainConfig.field_names() if k in namespace}
    values.update(overrides)
    values = {k: (defaults.get(k) if isinstance(v, str) and v.strip() == "" else v) for k, v in values.items()}
    return TrainConfig.from_dict(values)
