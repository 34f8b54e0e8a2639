"""Import one's own labelled structures (any file `ase.io.read` understands) into the OMat24 layout.

    import_data(["mine.extxyz"], "data/mine", val_frac=0.1) -> ImportReport
    python -m matscale data import mine.extxyz --out data/mine

Every frame of every source (`ase.io.read(path, index=":")`: extended XYZ, ASE .traj/.db,
VASP OUTCAR/vasprun.xml, ...) becomes one row of `OUT/{train,val}/<subset>/data.aselmdb`
(with `metadata.npz` natoms and `parents.npz`), written by `SubsetWriter`, so `open_split`,
`train --data OUT` and `evaluate` read it like OMat24.

Labels (units and signs: `matscale.data.units`). Without keys, each label is looked up in the
frame's calculator results, then in `atoms.info` / `atoms.arrays` under its own name; `--energy-key K` etc. name another key ("none" drops the label).
Stress comes from the stress key (scaled from `stress_units`) or, when absent, from the virial
(eV): σ = −W/V. A frame may lack any label but not all of them; missing labels are stored as
absent and skipped by the loss (label masks). Unreadable input raises DataError naming the file
and frame: NaN labels, wrong array shapes, stress without a 3-D periodic cell, keys not found
(the message lists the keys the frame has).

Split. Frames are grouped and whole groups go to validation, ranked by a seeded hash of the
group name (`fractions.parent_rank`): deterministic for a seed, no group in both splits.
`group_key`: "frame" (default: every frame is its own group, right for independent
single-point calculations), "file" (one group per source file: right when each file is one
trajectory), or an `atoms.info` key (e.g. config_type, a trajectory or parent id). Frames of
one MD run or relaxation are strongly correlated: group them, or validation leaks. With
`val_from`, those files are the validation split and every source is training.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from matscale.data.labels import LABELS
from matscale.data.units import STRESS_UNITS, convert_stress, stress_from_virial, stress_unit
from matscale.errors import ConfigError, DataError

SMALL_SPLIT = 20  # fewer validation structures than this gives noise-dominated losses
GROUP_MODES = ("frame", "file")


@dataclass(frozen=True)
class Keys:
    """Where each label is read from: None = the defaults, "none" = never."""

    energy: str | None = None
    forces: str | None = None
    stress: str | None = None
    virial: str | None = None


@dataclass
class ImportReport:
    out: str
    subset: str
    sources: dict[str, int]  # file -> frames read
    structures: dict[str, int]  # split -> rows written
    groups: dict[str, int]  # split -> groups
    coverage: dict[str, dict[str, int]]  # split -> {structures, energy, forces, stress}
    group_key: str
    stress_units: str
    keys: dict[str, str | None]
    seed: int
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def read_frames(path: Path) -> list:
    """All frames of one file through `ase.io.read(path, index=":")`."""
    import ase.io

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frames = ase.io.read(str(path), index=":")
    except Exception as exc:
        raise DataError(f"{path}: ase.io.read cannot read it ({type(exc).__name__}: {exc}); give a file in a "
                        "format ASE understands (extended XYZ, .traj, .db, OUTCAR, vasprun.xml, ...)") from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise DataError(f"{path}: the file holds no structures")
    return frames


def _available(atoms) -> str:
    calc = sorted((getattr(atoms.calc, "results", None) or {}).keys())
    return (f"calculator results {calc}, info keys {sorted(atoms.info)}, "
            f"per-atom arrays {sorted(k for k in atoms.arrays if k not in ('numbers', 'positions'))}")


def _lookup(atoms, key: str, per_atom: bool):
    results = getattr(atoms.calc, "results", None) or {}
    if results.get(key) is not None:
        return results[key]
    first, second = (atoms.arrays, atoms.info) if per_atom else (atoms.info, atoms.arrays)
    return first[key] if key in first else second.get(key)


def _finite(value, where: str, label: str) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {label} is not numeric ({value!r:.60})") from None
    if not np.isfinite(a).all():
        raise DataError(f"{where}: {label} holds NaN or inf; fix or drop this frame")
    return a


def frame_labels(atoms, where: str, keys: Keys = Keys(), stress_units: str = "eV/A3") -> dict:
    """{"energy": eV or None, "forces": (N, 3) eV/Å or None, "stress": Voigt-6 eV/Å³ or None}."""
    out: dict = {}
    n = len(atoms)
    raw = {label: (None if getattr(keys, label) == "none"
                   else _lookup(atoms, getattr(keys, label) or label, per_atom=label == "forces"))
           for label in ("energy", "forces", "stress", "virial")}
    if keys.stress not in (None, "none") and keys.virial not in (None, "none"):
        raise ConfigError("give --stress-key or --virial-key, not both")
    if raw["energy"] is not None:
        e = _finite(raw["energy"], where, "energy")
        if e.size != 1:
            raise DataError(f"{where}: energy must be one number, got shape {e.shape}")
        out["energy"] = float(e.reshape(()))
    if raw["forces"] is not None:
        f = _finite(raw["forces"], where, "forces")
        if f.shape != (n, 3):
            raise DataError(f"{where}: forces have shape {f.shape} but the frame has {n} atoms (expected ({n}, 3))")
        out["forces"] = f
    use_virial = raw["virial"] is not None and (raw["stress"] is None or keys.virial not in (None, "none"))
    if raw["stress"] is not None or use_virial:
        label = "virial" if use_virial else "stress"
        value = _finite(raw[label], where, label)
        if not atoms.pbc.all() or abs(atoms.cell.volume) < 1e-9:
            raise DataError(f"{where}: has a {label} label but no 3-D periodic cell (pbc={atoms.pbc.tolist()}, "
                            f"volume {abs(atoms.cell.volume):.3g} Å³); stress needs one: fix the cell or drop the "
                            f"label with --{label}-key none")
        try:
            out["stress"] = stress_from_virial(value, atoms.cell) if use_virial else convert_stress(value, stress_units)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
    return out


def _group(atoms, group_key: str, name: str, index: int, where: str) -> str:
    if group_key == "frame":
        return f"{name}:{index}"
    if group_key == "file":
        return name
    if group_key not in atoms.info:
        raise DataError(f"{where}: has no info key {group_key!r} to group by (--group-key); it has "
                        f"{sorted(atoms.info)}; use one of them, 'frame' or 'file'")
    return f"{group_key}={atoms.info[group_key]}"


def choose_val_groups(groups: Sequence[str], rows: Sequence[int], val_frac: float, seed: int) -> set[str]:
    """Groups for validation: the shortest prefix of the seeded ranking whose row count is
    closest to val_frac × rows, with at least one group in each split."""
    from matscale.data.fractions import parent_rank

    names = np.asarray(list(groups), dtype=object)
    counts = np.asarray(list(rows), dtype=np.int64)
    if len(names) < 2:
        raise DataError(f"cannot split {len(names)} group(s) into train and val; use a finer --group-key "
                        "(e.g. frame) or give the validation structures with --val-from")
    order = parent_rank(names, seed)
    cum = np.cumsum(counts[order])
    k = int(np.argmin(np.abs(cum - val_frac * counts.sum()))) + 1
    k = min(k, len(names) - 1)
    return set(names[order[:k]].tolist())


def _unique_names(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def _load(paths: list[Path], keys: Keys, stress_units: str, group_key: str, names: list[str]) -> list[dict]:
    """Every frame of `paths` as {atoms, labels, sid, group, source, frame}."""
    from ase.calculators.singlepoint import SinglePointCalculator

    items = []
    for path, name in zip(paths, names):
        for i, atoms in enumerate(read_frames(path)):
            where = f"{path} frame {i}"
            if len(atoms) == 0:
                raise DataError(f"{where}: the frame has no atoms")
            labels = frame_labels(atoms, where, keys, stress_units)
            group = _group(atoms, group_key, name, i, where)
            clean = atoms.copy()  # positions, numbers, cell, pbc; labels only through the calculator
            clean.info, clean.constraints = {}, []
            for k in list(clean.arrays):
                if k not in ("numbers", "positions"):
                    del clean.arrays[k]
            clean.calc = SinglePointCalculator(clean, **labels)
            items.append({"atoms": clean, "labels": labels, "sid": f"{name}:{i}", "group": group,
                          "source": name, "frame": i, "first": atoms if i == 0 else None, "where": where,
                          "keys": _available(atoms) if not labels else None})
    return items


def _check_keys(items: list[dict], keys: Keys, paths: list[Path]) -> list[str]:
    """DataError when no frame has any label, or an explicit key is never found; else warnings."""
    found = {k: sum(k in it["labels"] for it in items) for k in LABELS}
    first = next(it["first"] for it in items if it["first"] is not None)
    if not any(found.values()):
        raise DataError(f"no frame of {paths[0]} has an energy, forces or stress label under the keys tried "
                        f"(energy {keys.energy or 'energy'}, forces {keys.forces or 'forces'}, stress "
                        f"{keys.stress or 'stress'} / virial {keys.virial or 'virial'}); frame 0 has "
                        f"{_available(first)}: name yours with --energy-key/--forces-key/--stress-key/--virial-key")
    bare = next((it for it in items if not it["labels"]), None)
    if bare is not None:
        raise DataError(f"{bare['where']}: has no energy, forces or stress label under the keys tried; it has "
                        f"{bare['keys']}; label it or drop the frame")
    warnings = []
    for label in LABELS:
        explicit = [k for k in ((keys.stress, keys.virial) if label == "stress" else (getattr(keys, label),))
                    if k not in (None, "none")]
        if found[label] == 0 and explicit:
            raise DataError(f"no frame has the key {explicit[0]!r} for {label}; frame 0 of {paths[0]} has "
                            f"{_available(first)}")
        if found[label] == 0 and getattr(keys, label) != "none":
            warnings.append(f"no frame has a {label} label (looked for {label!r}); frame 0 has {_available(first)}; "
                            f"name the key with --{label}-key if it is stored under another name")
        elif 0 < found[label] < len(items):
            warnings.append(f"{len(items) - found[label]} of {len(items)} frames have no {label} label; "
                            "they are kept and skipped by that loss term")
    return warnings


def import_data(sources: Sequence[str | os.PathLike], out: str | os.PathLike, subset: str = "imported",
                val_frac: float | None = None, val_from: Sequence[str | os.PathLike] | None = None,
                group_key: str = "frame", keys: Keys = Keys(), stress_units: str = "eV/A3",
                seed: int = 0) -> ImportReport:
    """Read `sources` (and `val_from`), split, and write `out/{train,val}/<subset>/`; see module doc.

    val_frac: share of structures (whole groups) for validation, default 0.1; or val_from: files
    whose frames are the validation split (then every `sources` frame is training)."""
    t0 = time.perf_counter()
    stress_units = stress_unit(stress_units)
    if not sources:
        raise ConfigError("give at least one source file to import")
    if val_from and val_frac is not None:
        raise ConfigError("give --val-frac or --val-from, not both")
    if not val_from:
        val_frac = 0.1 if val_frac is None else float(val_frac)
        if not 0.0 < val_frac < 1.0:
            raise ConfigError(f"--val-frac must be in (0, 1) (the share of structures to validate on), got {val_frac}")
    if not subset or "/" in subset or subset.startswith("."):
        raise ConfigError(f"--subset must be a plain directory name, got {subset!r}")
    out = Path(out).expanduser()
    targets = {split: out / split / subset for split in ("train", "val")}
    taken = [str(t) for t in targets.values() if t.exists()]
    if taken:
        raise DataError(f"{', '.join(taken)} already exist(s); choose another --subset or --out, or delete it")
    train_paths = [Path(p).expanduser() for p in sources]
    val_paths = [Path(p).expanduser() for p in (val_from or [])]
    both = sorted({str(p.resolve()) for p in train_paths} & {str(p.resolve()) for p in val_paths})
    if both:
        raise ConfigError(f"{both[0]} is both a source and in --val-from; a structure belongs to one split")
    if len({str(p.resolve()) for p in train_paths + val_paths}) < len(train_paths + val_paths):
        raise ConfigError("a file is given twice; each source is read once")
    names = _unique_names(train_paths + val_paths)
    items = _load(train_paths + val_paths, keys, stress_units, group_key, names)
    warnings = _check_keys(items, keys, train_paths + val_paths)
    if val_paths:
        val_sources = set(names[len(train_paths):])
        split_of = ["val" if it["source"] in val_sources else "train" for it in items]
    else:
        groups = list(dict.fromkeys(it["group"] for it in items))
        rows = [0] * len(groups)
        index = {g: k for k, g in enumerate(groups)}
        for it in items:
            rows[index[it["group"]]] += 1
        val_groups = choose_val_groups(groups, rows, val_frac, seed)
        split_of = ["val" if it["group"] in val_groups else "train" for it in items]
    n_val = split_of.count("val")
    if n_val < SMALL_SPLIT:
        warnings.append(f"the validation split has only {n_val} structure(s) (< {SMALL_SPLIT}): its losses will be "
                        "noise-dominated; import more data or raise --val-frac")
    _write(out, subset, targets, items, split_of, group_key)
    report = ImportReport(
        out=str(out), subset=subset,
        sources={n: sum(it["source"] == n for it in items) for n in names},
        structures={s: split_of.count(s) for s in ("train", "val")},
        groups={s: len({it["group"] for it, sp in zip(items, split_of) if sp == s}) for s in ("train", "val")},
        coverage={s: {"structures": split_of.count(s),
                      **{k: sum(k in it["labels"] for it, sp in zip(items, split_of) if sp == s) for k in LABELS}}
                  for s in ("train", "val")},
        group_key=group_key, stress_units=stress_units,
        keys={k: getattr(keys, k) for k in ("energy", "forces", "stress", "virial")}, seed=int(seed),
        warnings=warnings, elapsed_s=time.perf_counter() - t0)
    tmp = out / f".import-{subset}.json.tmp"
    tmp.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    os.replace(tmp, out / f"import-{subset}.json")
    return report


def _write(out: Path, subset: str, targets: dict[str, Path], items: list[dict], split_of: list[str],
           group_key: str) -> None:
    """Write both splits into a staging folder inside `out`, then move them into place."""
    from matscale.data.writer import SubsetWriter

    out.mkdir(parents=True, exist_ok=True)
    stage = out / f".import-{subset}.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        for split in ("train", "val"):
            writer = SubsetWriter(stage / split, subset)
            for it, sp in zip(items, split_of):
                if sp == split:
                    writer.write_atoms(it["atoms"], it["sid"], f"{subset}/{it['group']}", calc_id=subset,
                                       task_type="imported", source=it["source"], frame=it["frame"],
                                       group_key=group_key)
            writer.close()
        for split, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / split, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def format_report(r: ImportReport) -> str:
    lines = [f"imported {sum(r.sources.values())} frames from {len(r.sources)} file(s) into {r.out}/"
             f"{{train,val}}/{r.subset}: {r.structures['train']} train + {r.structures['val']} val structures "
             f"({r.groups['train']} + {r.groups['val']} groups by {r.group_key}) in {r.elapsed_s:.1f} s"]
    for split, cov in r.coverage.items():
        n = cov["structures"]
        lines.append(f"  {split:<5} labels: " + ", ".join(f"{k} {cov[k]}/{n}" for k in LABELS))
    lines.append(f"  stress units read: {r.stress_units} ({STRESS_UNITS[r.stress_units]:.6g} eV/Å³ per unit)")
    lines.append(f"  train on it: python -m matscale train --data {r.out} --subsets {r.subset} --frac 1")
    return "\n".join(lines)
