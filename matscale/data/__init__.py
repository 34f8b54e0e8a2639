"""OMat24-format data: synthetic generator, importer, reader, fractions, default dataset, statistics.

Public API (imported lazily so `python -m matscale data --help` stays light):
    open_split(root=None, split="train", subsets=None, frac=1.0, seed=0, cache=False) -> StructureDataset
    open_splits(root=None, subsets=None, frac=1.0, val_frac=1.0, seed=0, cache=False) -> (train, val)
    synthesize(out, structures, seed=0, calculator="emt", workers=None, progress=True) -> SynthReport
    default_root() -> Path;  ensure_default(progress=True) -> Path
    dataset_root(name) -> Path;  ensure_named(name) -> Path   named datasets (omat24-teacher-v1)
    element_counts(source, splits=None) -> pandas.DataFrame
    summary_statistics(source, splits=None, subsets=None) -> pandas.DataFrame
    histograms(source, splits=None, subsets=None, bins=40) -> pandas.DataFrame
    download(subset, split, out, base_url=BASE_URL, progress=True) -> Path
    import_data(sources, out, subset="imported", val_frac=None, val_from=None, group_key="frame", ...) -> ImportReport
    label_coverage(stats_df) -> pandas.DataFrame (structures carrying energy / forces / stress)
    SUBSETS, SPLITS
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "open_split": "matscale.data.reader",
    "open_splits": "matscale.data.reader",
    "StructureDataset": "matscale.data.reader",
    "synthesize": "matscale.data.synth",
    "SynthReport": "matscale.data.synth",
    "default_root": "matscale.data.default",
    "ensure_default": "matscale.data.default",
    "book_data": "matscale.data.default",
    "ensure_dataset": "matscale.data.default",
    "dataset_root": "matscale.data.default",
    "ensure_named": "matscale.data.default",
    "element_counts": "matscale.data.elements",
    "summary_statistics": "matscale.data.stats",
    "histograms": "matscale.data.stats",
    "download": "matscale.data.download",
    "import_data": "matscale.data.importer",
    "ImportReport": "matscale.data.importer",
    "label_coverage": "matscale.data.stats",
    "SUBSETS": "matscale.data.subsets",
    "SPLITS": "matscale.data.subsets",
    "BASE_URL": "matscale.data.subsets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'matscale.data' has no attribute {name!r}")
