"""Write one OMat24 subset directory: `*.aselmdb` shards + `metadata.npz` (+ `parents.npz`).

Rows go through `ase.db.connect(path).write(atoms, data=...)` (the ase_db_backends LMDB
backend picked by the `.aselmdb` extension), with a `SinglePointCalculator` holding energy
(eV), forces (eV/Å) and stress (Voigt-6, eV/Å³, ASE sign), exactly like the released files.
`metadata.npz` holds int64 `natoms` in sorted-file then row order, as fairchem expects.
`parents.npz` is matscale's sidecar (ignored by fairchem): the parent of every row, so that
fractions and splits can group rows by parent without decoding them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from matscale.data.recipes import Frame

DEFAULT_SHARD_ROWS = 25_000


def frame_to_atoms(frame: Frame):
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=True)
    atoms.calc = SinglePointCalculator(atoms, energy=frame.energy, forces=frame.forces, stress=frame.stress)
    return atoms


def save_npz(path: Path, **arrays) -> None:
    """np.savez (uncompressed, like the released metadata.npz), written atomically."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


class SubsetWriter:
    """Streams frames of one subset into shards of at most `shard_rows` rows."""

    def __init__(self, directory: Path, subset: str, shard_rows: int = DEFAULT_SHARD_ROWS):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.subset = subset
        self.shard_rows = int(shard_rows)
        self.natoms: list[int] = []
        self.parent_of_row: list[str] = []
        self._shards: list[Path] = []
        self._db = None
        self._in_shard = 0

    def _open_shard(self):
        import ase.db

        path = self.dir / f"data.{len(self._shards):04d}.aselmdb"
        self._shards.append(path)
        self._db = ase.db.connect(str(path), use_lock_file=False)
        self._db.__enter__()  # one write transaction per shard
        self._in_shard = 0

    def _close_shard(self):
        if self._db is not None:
            self._db.__exit__(None, None, None)
            self._db = None

    def write(self, frame: Frame) -> None:
        self.write_atoms(frame_to_atoms(frame), frame.sid, frame.parent_id, calc_id=frame.subset,
                         task_type=frame.task_type)

    def write_atoms(self, atoms, sid: str, parent_id: str, **data) -> None:
        """Write one `ase.Atoms` whose calculator holds the labels it has (a missing label is
        left out of the row, which readers report as absent); `data` adds JSON-able row fields."""
        if self._db is None or self._in_shard >= self.shard_rows:
            self._close_shard()
            self._open_shard()
        row = {"sid": sid, "parent_id": parent_id, **data, "elements": sorted(set(atoms.get_chemical_symbols()))}
        self._db.write(atoms, data=row)
        self._in_shard += 1
        self.natoms.append(len(atoms))
        self.parent_of_row.append(parent_id)

    def close(self) -> int:
        """Finish the subset; a single shard is named `data.aselmdb`. Returns the row count."""
        self._close_shard()
        if not self._shards:  # an empty subset still gets an (empty) database
            self._open_shard()
            self._close_shard()
        if len(self._shards) == 1:
            os.replace(self._shards[0], self.dir / "data.aselmdb")
            self._shards = [self.dir / "data.aselmdb"]
        for lock in self.dir.glob("*.aselmdb-lock"):
            lock.unlink()
        save_npz(self.dir / "metadata.npz", natoms=np.asarray(self.natoms, dtype=np.int64))
        names, index = np.unique(np.asarray(self.parent_of_row, dtype=str), return_inverse=True)
        save_npz(self.dir / "parents.npz", parent_id=names.astype(str), parent_index=index.astype(np.int64))
        return len(self.natoms)
