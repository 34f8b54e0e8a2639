"""The training and validation sets of a config, from `matscale.data.open_split`.

Training structures are the config's `frac` of the training split for its `seed` (whole
parents or single structures: `frac_by`); the validation set is `val_frac` of the validation
split's parents, or `val_per_parent` frames of every validation parent, drawn with a FIXED
seed (0), so every run of a study is scored on the same structures whatever its training
seed and fraction.
Any indexable sequence of labelled `ase.Atoms` works as a dataset (tests and benches pass
in-memory lists); `natoms_of` uses the dataset's `natoms` array when it has one.
"""
from __future__ import annotations

import numpy as np

from matscale.errors import DataError

VAL_SEED = 0
UNIT_SAMPLE = 2000  # training-split structures defining the loss units (see loss_unit_structures)


def open_datasets(config, progress: bool = False):
    """(train, val) datasets of `config` (a validated TrainConfig)."""
    from matscale import data as mdata

    root = config.data
    if root is None and hasattr(mdata, "ensure_default"):
        root = _ensure_default(mdata, progress)
    kwargs = dict(root=root, subsets=list(config.subsets) if config.subsets else None, cache=config.cache_data)
    train = mdata.open_split(split="train", frac=config.frac, seed=config.seed, frac_by=config.frac_by, **kwargs)
    val = mdata.open_split(split="val", seed=VAL_SEED, **val_selection(config), **kwargs)
    if len(train) == 0:
        raise DataError(f"the training subset is empty (frac={config.frac}); raise frac or check {root}")
    if len(val) == 0:
        raise DataError(f"the validation subset is empty (val_frac={config.val_frac}); raise val_frac or check {root}")
    return train, val


def val_selection(config) -> dict:
    """open_split keywords of a config's validation set: val_per_parent frames of every parent,
    or val_frac of the parents."""
    if getattr(config, "val_per_parent", 0):
        return {"per_parent": int(config.val_per_parent)}
    return {"frac": config.val_frac}


def _ensure_default(mdata, progress: bool):
    import inspect

    fn = mdata.ensure_default
    params = inspect.signature(fn).parameters
    kwargs = {}
    if "progress" in params:
        kwargs["progress"] = progress
    return fn(**kwargs)


def natoms_of(dataset) -> np.ndarray:
    """(len,) int64 atoms per structure, without decoding structures when the dataset knows."""
    n = getattr(dataset, "natoms", None)
    if n is not None:
        n = np.asarray(n, dtype=np.int64)
        if len(n) == len(dataset):
            return n
    return np.array([len(dataset[i]) for i in range(len(dataset))], dtype=np.int64)


def open_eval_split(config, split: str, data: str | None = None, frac: float | None = None):
    """The structures a run is evaluated on: `split` 'val' (the run's validation subset) or
    'train' (its training subset); `data`/`frac` override the run's dataset root / fraction."""
    from matscale import data as mdata
    from matscale.errors import ConfigError

    if split not in ("train", "val"):
        raise ConfigError(f"split must be train or val, got {split!r}")
    root = data if data is not None else config.data
    if root is None and hasattr(mdata, "ensure_default"):
        root = _ensure_default(mdata, False)
    if frac is not None:
        select = {"frac": frac}
    elif split == "train":
        select = {"frac": config.frac, "frac_by": getattr(config, "frac_by", "parent")}
    else:
        select = val_selection(config)
    seed = config.seed if split == "train" else VAL_SEED
    ds = mdata.open_split(root=root, split=split, subsets=list(config.subsets) if config.subsets else None,
                          seed=seed, cache=False, **select)
    if len(ds) == 0:
        raise DataError(f"no {split} structures for {select} in {root}")
    return ds


def loss_unit_structures(config, size: int = UNIT_SAMPLE) -> list:
    """A fixed random sample (seed 0) of the WHOLE training split (the config's subsets), the
    same for every run on a dataset whatever its frac and seed: the loss units are fitted on it
    so that losses of different runs are in the same units (see `normalization.py`)."""
    from matscale import data as mdata

    root = config.data
    if root is None and hasattr(mdata, "ensure_default"):
        root = _ensure_default(mdata, False)
    full = mdata.open_split(root=root, split="train", subsets=list(config.subsets) if config.subsets else None,
                            frac=1.0, seed=0, cache=False)
    n = len(full)
    idx = np.sort(np.random.default_rng(0).choice(n, size=min(size, n), replace=False))
    return [full[int(i)] for i in idx]
