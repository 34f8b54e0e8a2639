"""Read OMat24-layout data (`<root>/<split>/<subset>/*.aselmdb`) as ase.Atoms, without fairchem.

`open_split` returns a `StructureDataset`: indexable, sized, picklable (LMDB handles are
opened lazily in each process, so it works as a torch Dataset with DataLoader workers), with
per-row `natoms` from `metadata.npz` (no decoding needed for size-balanced batching) and
per-row subset names. Each item is an `ase.Atoms` with a SinglePointCalculator holding the
labels (energy eV, forces eV/Å, stress Voigt-6 eV/Å³, ASE sign) and `atoms.info` = the row's
data (sid, parent_id, ...) plus `subset`. A label missing from a row (real datasets mix
labels) is simply absent from the calculator; in a `Record` it is NaN-filled, with
`has_energy` / `has_forces` / `has_stress` saying which are present (see `matscale.data.labels`).
The files are opened through ASE's database API (`ase.db.connect`, whose `.aselmdb` backend comes from ase_db_backends); rows are fetched
by id from its LMDB environment and decoded (orjson, falling back to ASE's JSON decoder).
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from matscale.data.fractions import FRAC_BY, check_frac, select_per_parent, select_rows, select_structures
from matscale.data.integrity import check_lmdb_size, implausible, natoms_mismatch, sample_rows
from matscale.data.subsets import SPLITS, SUBSETS, check_split, check_subsets
from matscale.errors import DataError

_HOWTO = ("create one with `python -m matscale data synth --out DIR` or fetch real OMat24 with "
          "`python -m matscale data download --subset NAME --split train|val --out DIR`")


@dataclass(frozen=True)
class Record:
    """A decoded row: arrays in Å / eV / eV/Å / eV/Å³ (Voigt-6); a missing label is NaN-filled."""

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    energy: float
    forces: np.ndarray
    stress: np.ndarray
    info: dict

    # stored non-finite labels are rejected on decoding, so NaN here always means "absent"
    @property
    def has_energy(self) -> bool:
        return bool(np.isfinite(self.energy))

    @property
    def has_forces(self) -> bool:
        return bool(np.isfinite(self.forces).all())

    @property
    def has_stress(self) -> bool:
        return bool(np.isfinite(self.stress).all())

    def to_atoms(self):
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        atoms = Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)
        present = {k: v for k, v, ok in (("energy", self.energy, self.has_energy),
                                         ("forces", self.forces.copy(), self.has_forces),
                                         ("stress", self.stress.copy(), self.has_stress)) if ok}
        atoms.calc = SinglePointCalculator(atoms, **present)
        atoms.info.update(self.info)
        return atoms


def connect(path: Path):
    """Open one `.aselmdb` read-only through ase.db; a non-LMDB file raises DataError."""
    import ase.db
    import lmdb

    def fail(exc):
        return DataError(f"{path} is not a readable ASE LMDB database ({type(exc).__name__}: {exc}); "
                         "re-download or regenerate it")

    try:  # probe first: a failing ase.db.connect leaves an object whose __del__ prints noise
        env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    except (lmdb.Error, OSError) as exc:
        raise fail(exc) from None
    try:  # a truncated memory-mapped file would SIGBUS on the first read past its end
        check_lmdb_size(path, env)
    finally:
        env.close()
    try:
        return ase.db.connect(str(path), type="aselmdb", readonly=True, use_lock_file=False)
    except Exception as exc:  # json/zlib errors in the bookkeeping keys
        raise fail(exc) from None


class _Unusual(Exception):
    """A row needing ASE's full JSON decoder (NaN/inf literals, complex arrays, ASE objects)."""


def _arrays(obj):
    """Turn ASE's {"__ndarray__": [shape, dtype, flat]} objects into numpy arrays."""
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            shape, dtype, flat = obj["__ndarray__"]
            if np.dtype(dtype).kind == "c":
                raise _Unusual
            return np.array(flat, dtype=dtype).reshape(shape)
        if any(k.startswith("__") for k in obj):
            raise _Unusual
        return {k: _arrays(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_arrays(v) for v in obj]
    return obj


def _decode_json(raw: bytes) -> dict:
    """ASE's row JSON: orjson (≈3x faster) with ASE's own decoder as the fallback."""
    text = zlib.decompress(raw)
    try:
        import orjson

        return _arrays(orjson.loads(text))
    except (ImportError, ValueError, _Unusual):  # orjson.JSONDecodeError is a ValueError
        from ase.io.jsonio import decode

        return decode(text.decode())


def decode_record(raw: bytes | None, path, row_id: int, subset: str) -> Record:
    """Decode one stored row; stored labels must be finite, absent ones come back NaN-filled."""
    where = f"{path} row {row_id}"
    if raw is None:
        raise DataError(f"{where}: row is missing from the database; the file is damaged, re-download or regenerate it")
    try:
        dct = _decode_json(raw)
    except Exception as exc:
        raise DataError(f"{where}: cannot decode the row ({type(exc).__name__}); the file is damaged") from None
    numbers = np.asarray(dct["numbers"], dtype=np.int64)
    if len(numbers) == 0:
        raise DataError(f"{where}: structure has zero atoms; drop this row (energy per atom is undefined)")
    present = [k for k in ("energy", "forces", "stress") if dct.get(k) is not None]
    forces = (np.asarray(dct["forces"], dtype=np.float64) if "forces" in present
              else np.full((len(numbers), 3), np.nan)).reshape(len(numbers), 3)
    stress = np.asarray(dct["stress"], dtype=np.float64) if "stress" in present else np.full(6, np.nan)
    if stress.shape == (3, 3):
        stress = stress.reshape(9)[[0, 4, 8, 5, 2, 1]]
    stress = stress.reshape(6)
    energy = float(dct["energy"]) if "energy" in present else float("nan")
    bad = [name for name, v in (("energy", energy), ("forces", forces), ("stress", stress))
           if name in present and not np.isfinite(v).all()]
    if bad:
        raise DataError(f"{where}: non-finite (NaN or inf) {'/'.join(bad)}; drop or fix this structure")
    odd = implausible(energy, len(numbers), forces, stress)
    if odd:
        raise DataError(f"{where}: {odd} is not physical (a unit or conversion error?); drop or fix this structure")
    info = dict(dct.get("data") or {})
    info.setdefault("sid", f"{Path(path).parent.name}/{Path(path).name}:{row_id}")
    info["subset"] = subset
    return Record(numbers, np.asarray(dct["positions"], dtype=np.float64).reshape(-1, 3),
                  np.asarray(dct["cell"], dtype=np.float64).reshape(3, 3),
                  np.asarray(dct.get("pbc", (True, True, True)), dtype=bool).reshape(3),
                  energy, forces, stress, info)


@dataclass
class _Source:
    path: Path  # one .aselmdb file
    subset: str
    ids: np.ndarray  # row ids inside the file


def subset_dirs(root: Path, split: str) -> dict[str, Path]:
    """Subset name -> directory holding *.aselmdb files, OMat24 subsets first, others sorted."""
    base = root / split
    found = {p.name: p for p in sorted(base.iterdir()) if p.is_dir() and any(p.glob("*.aselmdb"))} if base.is_dir() else {}
    known = [s for s in SUBSETS if s in found]
    return {s: found[s] for s in known + sorted(set(found) - set(known))}


def _check_root(root: Path, split: str) -> dict[str, Path]:
    if not root.exists():
        raise DataError(f"no dataset at {root}: {_HOWTO}")
    dirs = subset_dirs(root, split)
    if not dirs:
        raise DataError(f"no *.aselmdb files under {root / split}/<subset>/ (expected the OMat24 layout "
                        f"<root>/{{{','.join(SPLITS)}}}/<subset>/*.aselmdb); {_HOWTO}")
    return dirs


class StructureDataset:
    """Rows of one split (optionally a fraction of it) as ase.Atoms; see module doc."""

    def __init__(self, root: Path, split: str, sources: list[_Source], natoms: np.ndarray | None,
                 parents: np.ndarray | None, cache: bool = False):
        self.root, self.split = Path(root), split
        self._sources = sources
        self.subset_names: tuple[str, ...] = tuple(dict.fromkeys(s.subset for s in sources))
        lengths = np.array([len(s.ids) for s in sources], dtype=np.int64)
        self._file_of_row = np.repeat(np.arange(len(sources), dtype=np.int32), lengths)
        self._id_of_row = np.concatenate([s.ids for s in sources]) if sources else np.zeros(0, np.int64)
        code = {name: i for i, name in enumerate(self.subset_names)}
        self._subset_of_row = np.repeat(np.array([code[s.subset] for s in sources], dtype=np.int16), lengths)
        self._natoms_all = natoms
        self._parents_all = parents
        self._sel = np.arange(len(self._id_of_row), dtype=np.int64)
        self.cache_enabled = bool(cache)
        self._cache: dict[int, Record] = {}
        self._dbs: dict[int, object] = {}
        self._pid = os.getpid()

    # --- size and per-row metadata (no decoding) ---
    def __len__(self) -> int:
        return len(self._sel)

    def __repr__(self) -> str:
        return (f"StructureDataset({str(self.root)!r}, split={self.split!r}, structures={len(self)}, "
                f"subsets={len(set(self._subset_of_row[self._sel].tolist()))}, cache={self.cache_enabled})")

    @property
    def natoms(self) -> np.ndarray:
        """int64 atoms per structure (from metadata.npz when present, else decoded once)."""
        if self._natoms_all is None:
            self._natoms_all = np.array([len(self._record_global(int(g)).numbers)
                                         for g in range(len(self._id_of_row))], dtype=np.int64)
        return self._natoms_all[self._sel]

    @property
    def subset_codes(self) -> np.ndarray:
        """int16 index into `subset_names` of every row."""
        return self._subset_of_row[self._sel]

    @property
    def subsets(self) -> np.ndarray:
        """Subset name of every row."""
        return np.asarray(self.subset_names, dtype=object)[self.subset_codes]

    @property
    def parent_ids(self) -> np.ndarray:
        """Parent id of every row (from parents.npz when present, else decoded once)."""
        if self._parents_all is None:
            ids = []
            for g in range(len(self._id_of_row)):
                info = self._record_global(g).info
                ids.append(str(info.get("parent_id", info["sid"])))  # no parent: the row is its own group
            self._parents_all = np.array(ids, dtype=object)
        return self._parents_all[self._sel]

    @property
    def files(self) -> list[Path]:
        return [s.path for s in self._sources]

    # --- items ---
    def _db(self, f: int):
        if self._pid != os.getpid():  # forked or unpickled into another process: reopen
            self._dbs, self._pid = {}, os.getpid()
        if f not in self._dbs:
            self._dbs[f] = connect(self._sources[f].path)
        return self._dbs[f]

    def _record_global(self, g: int) -> Record:
        rec = self._cache.get(g)
        if rec is not None:
            return rec
        f, row_id = int(self._file_of_row[g]), int(self._id_of_row[g])
        src = self._sources[f]
        with self._db(f).env.begin() as txn:
            raw = txn.get(str(row_id).encode("ascii"))
        rec = decode_record(raw, src.path, row_id, src.subset)
        if self._natoms_all is not None and len(rec.numbers) != self._natoms_all[g]:
            raise natoms_mismatch(src.path.parent / "metadata.npz", row_id, int(self._natoms_all[g]),
                                  len(rec.numbers), src.path)
        if self.cache_enabled:
            self._cache[g] = rec
        return rec

    def record(self, i: int) -> Record:
        """The decoded row `i` as plain arrays (cheaper than building Atoms)."""
        return self._record_global(int(self._sel[self._index(i)]))

    def _index(self, i) -> int:
        n = len(self._sel)
        i = int(i)
        if i < -n or i >= n:
            raise IndexError(f"index {i} out of range for a dataset of {n} structures")
        return i % n if n else i

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.record(i).to_atoms()

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def preload(self, progress: bool = False) -> "StructureDataset":
        """Decode every row into memory now (turns caching on)."""
        from tqdm.auto import tqdm

        self.cache_enabled = True
        for i in tqdm(range(len(self)), desc="caching", unit="structures", disable=not progress):
            self.record(i)
        return self

    def validate(self, progress: bool = False) -> None:
        """Decode every row, raising DataError at the first unusable one."""
        from tqdm.auto import tqdm

        for i in tqdm(range(len(self)), desc="validating", unit="structures", disable=not progress):
            self.record(i)

    def select(self, rows: np.ndarray) -> "StructureDataset":
        """A view on the given row positions (sharing files and cache)."""
        new = object.__new__(StructureDataset)
        new.__dict__.update(self.__dict__)
        new._sel = self._sel[np.asarray(rows, dtype=np.int64)]
        new._dbs, new._pid = {}, os.getpid()
        return new

    def fraction(self, frac: float, seed: int = 0, by: str = "parent") -> "StructureDataset":
        """Seeded, nested, subset-stratified fraction, whole parents (`by="parent"`) or single
        structures (`by="structure"`); see matscale.data.fractions."""
        frac = check_frac(frac)
        if by not in FRAC_BY:
            raise DataError(f"frac_by must be one of {', '.join(FRAC_BY)}, got {by!r}")
        if frac == 1.0:
            return self
        if by == "structure":
            return self.select(select_structures(self.subset_codes, frac, seed))
        return self.select(select_rows(self.subset_codes, self.parent_ids, frac, seed))

    def per_parent(self, n: int, seed: int = 0) -> "StructureDataset":
        """The first `n` frames (seeded order) of every parent (see matscale.data.fractions)."""
        return self.select(select_per_parent(self.parent_ids, n, seed))

    # --- pickling: LMDB handles stay in their process ---
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_dbs"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._dbs, self._pid = {}, os.getpid()

    def close(self) -> None:
        for db in self._dbs.values():
            try:
                db.close()
            except Exception:
                pass
        self._dbs = {}


def _load_npz(path: Path, key: str):
    try:
        with np.load(path, allow_pickle=False) as z:
            return z[key] if key in z else None
    except ValueError as exc:
        if "pickle" in str(exc):  # numpy would suggest allow_pickle=True: never load pickles from data files
            raise DataError(f"{path} holds Python objects instead of plain integer arrays (not a matscale "
                            "metadata file); delete it (it is recomputed) or regenerate the subset") from None
        raise DataError(f"{path} is unreadable ({type(exc).__name__}); delete it or regenerate the subset") from None
    except Exception as exc:
        raise DataError(f"{path} is unreadable ({type(exc).__name__}); delete it or regenerate the subset") from None


def open_split(
    root: str | os.PathLike | None = None,
    split: str = "train",
    subsets: Sequence[str] | str | None = None,
    frac: float = 1.0,
    seed: int = 0,
    cache: bool = False,
    frac_by: str = "parent",
    per_parent: int = 0,
) -> StructureDataset:
    """Open `<root>/<split>/<subset>/*.aselmdb` as one StructureDataset.

    root: dataset directory; None means the default dataset, a name of `default.DATASETS` that
    dataset (either generated on first use).
    subsets: names (list or comma-separated); None means every subset present.
    frac: share of the split's structures to keep, in (0, 1]: seeded by `seed`, nested,
    stratified by subset and grouped by parent (`frac_by="parent"`) or drawn per structure
    (`frac_by="structure"`); see `matscale.data.fractions`.
    per_parent: > 0 keeps `per_parent` frames of EVERY parent (seeded by `seed`) instead of a
    fraction (frac must then be 1).
    cache: keep decoded structures in memory after first access.
    """
    if root is None:
        from matscale.data.default import ensure_default

        root = ensure_default()
    elif isinstance(root, str) and not Path(root).is_dir():
        from matscale.data.default import DATASETS, ensure_named

        if root in DATASETS:  # a named dataset ('omat24-teacher-v1'): generated on first use
            root = ensure_named(root)
    root = Path(root).expanduser()
    split = check_split(split)
    frac = check_frac(frac)
    if frac_by not in FRAC_BY:
        raise DataError(f"frac_by must be one of {', '.join(FRAC_BY)}, got {frac_by!r}")
    if per_parent and frac < 1.0:
        raise DataError(f"choose either frac ({frac}) or per_parent ({per_parent}) frames, not both")
    dirs = _check_root(root, split)
    present = tuple(dirs)
    if subsets is not None:
        names = check_subsets(subsets, available=tuple(dict.fromkeys(SUBSETS + present)))
        absent = [s for s in names if s not in dirs]
        if absent:
            raise DataError(f"subset(s) {', '.join(absent)} not found under {root / split}; "
                            f"present there: {', '.join(present)}")
    else:
        names = present
    sources, natoms_parts, parent_parts = [], [], []
    for subset in names:
        d = dirs[subset]
        files = sorted(d.glob("*.aselmdb"))
        dir_sources = []
        for path in files:
            db = connect(path)
            ids = np.asarray(db.ids, dtype=np.int64)
            db.close()
            dir_sources.append(_Source(path, subset, ids))
        n_rows = sum(len(s.ids) for s in dir_sources)
        meta = d / "metadata.npz"
        natoms = _load_npz(meta, "natoms") if meta.exists() else None
        if natoms is not None:
            if not np.issubdtype(natoms.dtype, np.integer):
                raise DataError(f"{meta}: natoms must be integers, found {natoms.dtype}; regenerate metadata.npz")
            if len(natoms) != n_rows:
                raise DataError(f"{meta} lists {len(natoms)} structures but the databases in {d} hold {n_rows}; "
                                "delete metadata.npz (it is recomputed) or regenerate the subset")
        natoms_parts.append(None if natoms is None else natoms.astype(np.int64))
        pfile = d / "parents.npz"
        parents = None
        if pfile.exists():
            names_arr, index = _load_npz(pfile, "parent_id"), _load_npz(pfile, "parent_index")
            if names_arr is not None and index is not None and len(index) == n_rows:
                parents = names_arr.astype(object)[index]
        parent_parts.append(parents)
        sources += dir_sources
    parents_all = np.concatenate(parent_parts) if all(p is not None for p in parent_parts) else None
    ds = StructureDataset(root, split, sources, None, parents_all, cache=cache)
    if any(p is not None for p in natoms_parts):  # decode only subsets that lack metadata.npz
        start = 0
        for k, part in enumerate(natoms_parts):
            n = int(sum(len(s.ids) for s in sources if s.subset == names[k]))
            if part is None:
                natoms_parts[k] = np.array([len(ds._record_global(g).numbers) for g in range(start, start + n)],
                                           dtype=np.int64)
            start += n
        ds._natoms_all = np.concatenate(natoms_parts)
        start = 0
        for k, part in enumerate(natoms_parts):  # a few rows per subset: a foreign metadata.npz fails here
            for g in start + sample_rows(len(part)):
                ds._record_global(int(g))
            start += len(part)
    if per_parent:
        return ds.per_parent(per_parent, seed)
    return ds.fraction(frac, seed, by=frac_by) if frac < 1.0 else ds


def open_splits(
    root: str | os.PathLike | None = None,
    subsets: Sequence[str] | str | None = None,
    frac: float = 1.0,
    val_frac: float = 1.0,
    seed: int = 0,
    cache: bool = False,
) -> tuple[StructureDataset, StructureDataset]:
    """(train, val): `frac` applies to train only, `val_frac` to val only (val never depends on frac)."""
    train = open_split(root, "train", subsets=subsets, frac=frac, seed=seed, cache=cache)
    val = open_split(train.root, "val", subsets=subsets, frac=val_frac, seed=seed, cache=cache)
    return train, val
