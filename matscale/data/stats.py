"""Summary statistics and histograms of a dataset, per split × subset × quantity.

Quantities (unit): natoms (atoms per structure), energy_per_atom (eV/atom), force_component
(eV/Å, every Cartesian component of every atom), force_norm (eV/Å, per atom), max_force
(eV/Å, largest atomic force norm per structure), pressure (GPa, −tr σ/3: positive when
compressed) and stress_deviatoric_norm (GPa, Frobenius norm of σ − tr σ/3 · I). Stresses are
reported in GPa (1 eV/Å³ = 160.2177 GPa) because the numbers are easier to read.
Structures lacking a label (see `matscale.data.labels`) add nothing to that label's
quantities, so a quantity's `count` is its coverage; `label_coverage` tabulates it per split
× subset (structures with energy / forces / stress). The table prints each row with as many
decimals as its spread needs (two significant digits of the std), so −163.112 ± 0.031 stays
distinguishable from −163.1.
Output order and values depend only on the data, so the JSON is byte-identical for equal data.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable

import numpy as np

EV_A3_TO_GPA = 160.21766208
QUANTITIES: dict[str, str] = {
    "natoms": "atoms",
    "energy_per_atom": "eV/atom",
    "force_component": "eV/Å",
    "force_norm": "eV/Å",
    "max_force": "eV/Å",
    "pressure": "GPa",
    "stress_deviatoric_norm": "GPa",
}
STAT_COLUMNS = ["count", "mean", "std", "min", "p05", "p25", "p50", "p75", "p95", "max"]
ALL = "all"


def _datasets(source, splits, subsets) -> dict[str, object]:
    """split -> StructureDataset from a root path, one dataset, or a {split: dataset} dict."""
    from matscale.data.reader import StructureDataset, open_split, subset_dirs

    if isinstance(source, StructureDataset):
        return {source.split: source}
    if isinstance(source, dict):
        return dict(source)
    root = Path(source)
    if splits is None or isinstance(splits, str):
        splits = [splits] if isinstance(splits, str) else [s for s in ("train", "val") if subset_dirs(root, s)]
        if not splits:
            open_split(root, "train")  # raises the DataError that explains what is missing
    return {split: open_split(root, split, subsets=subsets) for split in splits}


def collect(ds) -> dict[str, dict[str, np.ndarray]]:
    """subset -> quantity -> values, decoding every row of `ds` once."""
    per: dict[str, dict[str, list]] = {}
    for i in range(len(ds)):
        rec = ds.record(i)
        q = per.setdefault(rec.info["subset"], {k: [] for k in QUANTITIES})
        n = len(rec.numbers)
        s = rec.stress
        sigma = np.array([[s[0], s[5], s[4]], [s[5], s[1], s[3]], [s[4], s[3], s[2]]])
        tr = np.trace(sigma) / 3.0
        fnorm = np.sqrt((rec.forces**2).sum(1))
        q["natoms"].append(np.array([n], dtype=np.float64))
        if rec.has_energy:
            q["energy_per_atom"].append(np.array([rec.energy / n]))
        if rec.has_forces:
            q["force_component"].append(rec.forces.reshape(-1))
            q["force_norm"].append(fnorm)
            q["max_force"].append(np.array([fnorm.max() if n else 0.0]))
        if rec.has_stress:
            q["pressure"].append(np.array([-tr * EV_A3_TO_GPA]))
            q["stress_deviatoric_norm"].append(np.array([np.linalg.norm(sigma - tr * np.eye(3)) * EV_A3_TO_GPA]))
    order = [s for s in ds.subset_names if s in per]
    return {s: {k: np.concatenate(v) if v else np.zeros(0) for k, v in per[s].items()} for s in order}


def _describe(x: np.ndarray) -> dict:
    if len(x) == 0:
        return {"count": 0} | {c: math.nan for c in STAT_COLUMNS[1:]}
    q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"count": int(len(x)), "mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()),
            "p05": float(q[0]), "p25": float(q[1]), "p50": float(q[2]), "p75": float(q[3]), "p95": float(q[4]),
            "max": float(x.max())}


def _values(source, splits, subsets) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    out = {}
    for split, ds in _datasets(source, splits, subsets).items():
        per = collect(ds)
        for subset, q in per.items():
            out[(split, subset)] = q
        if per:
            out[(split, ALL)] = {k: np.concatenate([q[k] for q in per.values()]) for k in QUANTITIES}
    return out


def summary_statistics(source, splits: Iterable[str] | str | None = None,
                       subsets: Iterable[str] | str | None = None):
    """pandas.DataFrame: one row per split × subset (plus 'all') × quantity, columns
    split, subset, quantity, unit, count, mean, std, min, p05, p25, p50, p75, p95, max.
    For natoms, `count` is the number of structures.

    source: dataset root, a StructureDataset, or a {split: StructureDataset} dict.
    """
    import pandas as pd

    rows = []
    for (split, subset), q in _values(source, splits, subsets).items():
        for name, unit in QUANTITIES.items():
            rows.append({"split": split, "subset": subset, "quantity": name, "unit": unit} | _describe(q[name]))
    return pd.DataFrame(rows, columns=["split", "subset", "quantity", "unit"] + STAT_COLUMNS)


def histograms(source, splits: Iterable[str] | str | None = None, subsets: Iterable[str] | str | None = None,
               quantities: Iterable[str] | None = None, bins: int = 40):
    """pandas.DataFrame of binned counts: split, subset, quantity, unit, bin_left, bin_right, count.

    Every split × subset shares the same bin edges per quantity (linear, over the full range
    of all selected data), so their histograms can be overlaid.
    """
    import pandas as pd

    values = _values(source, splits, subsets)
    names = list(quantities) if quantities is not None else list(QUANTITIES)
    unknown = [n for n in names if n not in QUANTITIES]
    if unknown:
        from matscale.errors import DataError

        raise DataError(f"unknown quantity {unknown[0]!r}; choose from {', '.join(QUANTITIES)}")
    rows = []
    for name in names:
        every = np.concatenate([q[name] for (sp, su), q in values.items() if su != ALL] or [np.zeros(0)])
        lo, hi = (float(every.min()), float(every.max())) if len(every) else (0.0, 1.0)
        if name == "natoms":  # integer-centred bins
            width = max(1, math.ceil((hi - lo + 1) / bins))
            edges = np.arange(lo - 0.5, hi + width + 0.5, width)
        else:
            edges = np.histogram_bin_edges(every, bins=bins, range=(lo, hi if hi > lo else lo + 1.0))
        for (split, subset), q in values.items():
            counts, _ = np.histogram(q[name], bins=edges)
            for left, right, c in zip(edges[:-1], edges[1:], counts):
                rows.append({"split": split, "subset": subset, "quantity": name, "unit": QUANTITIES[name],
                             "bin_left": float(left), "bin_right": float(right), "count": int(c)})
    return pd.DataFrame(rows, columns=["split", "subset", "quantity", "unit", "bin_left", "bin_right", "count"])


# label -> the quantity whose count is the number of structures carrying it
COVERAGE_OF = {"structures": "natoms", "energy": "energy_per_atom", "forces": "max_force", "stress": "pressure"}


def label_coverage(df):
    """pandas.DataFrame split, subset, structures, energy, forces, stress (structures carrying
    each label) from a `summary_statistics` table."""
    import pandas as pd

    rows = []
    for (split, subset), g in df.groupby(["split", "subset"], sort=False):
        count = dict(zip(g["quantity"], g["count"]))
        rows.append({"split": split, "subset": subset, **{k: int(count.get(q, 0)) for k, q in COVERAGE_OF.items()}})
    return pd.DataFrame(rows, columns=["split", "subset", *COVERAGE_OF])


def _clean(rec: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else
                (int(v) if isinstance(v, (np.integer,)) else v)) for k, v in rec.items()}


def to_json(df) -> str:
    """Deterministic JSON (NaN -> null) of a statistics table, with its label coverage."""
    records = [_clean(rec) for rec in df.to_dict(orient="records")]
    coverage = [_clean(rec) for rec in label_coverage(df).to_dict(orient="records")]
    return json.dumps({"units": QUANTITIES, "statistics": records, "coverage": coverage},
                      indent=1, ensure_ascii=False) + "\n"


def write_json(df, path: str | os.PathLike) -> None:
    from matscale.runs import atomic_write_text

    atomic_write_text(path, to_json(df))


def decimals(std: float, lo: int = 0, hi: int = 10) -> int:
    """Decimals that show two significant digits of `std` (4 when it is 0 or undefined)."""
    try:
        std = float(std)
    except (TypeError, ValueError):
        return 4
    if not math.isfinite(std) or std <= 0:
        return 4
    return int(min(hi, max(lo, 1 - math.floor(math.log10(std)))))


def _fmt(v, d: int) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "nan"
    if abs(v) >= 1e9:
        return f"{v:.4e}"
    text = f"{v:.{d}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.00"


def format_table(df) -> str:
    """A readable fixed-width table: one line per split × subset × quantity, then label coverage.

    Every value of a row gets the decimals that show two significant digits of its std."""
    records = df.to_dict(orient="records")
    cells = []
    for rec in records:
        d = decimals(rec["std"])
        if rec["quantity"] == "natoms":  # integers: a mean needs at most 2 decimals
            d = 0 if not rec["std"] else min(d, 2)
        cells.append([f"{rec['count']:d}"] + [_fmt(rec[c], d) for c in STAT_COLUMNS[1:]])
    width = max([10] + [len(c) for row in cells for c in row])
    lines = []
    head = f"{'split':<5} {'subset':<24} {'quantity':<23} {'unit':<7} " + " ".join(f"{c:>{width}}" for c in STAT_COLUMNS)
    lines.append(head)
    lines.append("-" * len(head))
    for rec, row in zip(records, cells):
        lines.append(f"{rec['split']:<5} {rec['subset']:<24} {rec['quantity']:<23} {rec['unit']:<7} "
                     + " ".join(f"{c:>{width}}" for c in row))
    cov = label_coverage(df)
    if len(cov):
        lines += ["", "label coverage (structures carrying each label)",
                  f"{'split':<5} {'subset':<24} {'structures':>10} {'energy':>14} {'forces':>14} {'stress':>14}"]
        for rec in cov.to_dict(orient="records"):
            n = rec["structures"]
            part = [f"{rec[k]} ({math.floor(100 * rec[k] / n)}%)" if n else "0" for k in ("energy", "forces", "stress")]
            lines.append(f"{rec['split']:<5} {rec['subset']:<24} {n:>10d} " + " ".join(f"{p:>14}" for p in part))
    return "\n".join(lines)
