"""Integrity checks on dataset files, done before any row is read.

Why: an `.aselmdb` is an LMDB file that is memory-mapped; a truncated file (an interrupted
copy or download) makes the first read past its end a SIGBUS that kills the process with no
message. LMDB's meta page records the last page number in use, so the size the file must
have is known without touching the data pages: `(last_pgno + 1) * page_size` bytes.
`implausible` flags labels no physical structure has (a unit or parsing error upstream).
`metadata.npz` holds per-row atom counts used for size-balanced batching and FLOP counts;
a stale or foreign one has the right length but wrong counts, so `sample_rows` picks the
rows `check_natoms` decodes at open to compare (every other row is checked when decoded).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from matscale.errors import DataError

NATOMS_SAMPLE = 8  # rows per subset decoded at open to check metadata.npz
# labels beyond these are not physical (an all-electron total energy of the heaviest element is
# ~1e6 eV/atom; OMat24 drops |F| > 50 eV/Å and |σ| > 80 GPa = 0.5 eV/Å³): a unit or parsing error
LIMITS = {"energy": 1e7, "force": 1e4, "stress": 1e3}  # eV/atom, eV/Å, eV/Å³


def check_lmdb_size(path: str | os.PathLike, env) -> None:
    """DataError when the LMDB file at `path` is shorter than its own meta page says.

    env: an open `lmdb.Environment` on that file (read-only). Bytes: the file must hold
    pages 0..last_pgno of `psize` bytes each.
    """
    path = Path(path)
    info, stat = env.info(), env.stat()
    needed = (int(info["last_pgno"]) + 1) * int(stat["psize"])
    size = path.stat().st_size
    if size < needed:
        raise DataError(f"{path} is truncated ({size} bytes, its LMDB header says {needed}): an interrupted copy "
                        "or download; regenerate it (`python -m matscale data synth`) or re-download it")


def sample_rows(n: int, k: int = NATOMS_SAMPLE) -> np.ndarray:
    """Up to `k` row positions spread over 0..n-1 (first and last included)."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(np.int64))


def natoms_mismatch(meta: Path, row_id: int, listed: int, decoded: int, source: Path) -> DataError:
    """The error for a metadata.npz whose atom count disagrees with the database row."""
    return DataError(f"{meta} says row {row_id} of {source} has {listed} atoms but the database holds {decoded}: "
                     "metadata.npz does not belong to these databases; delete it (it is recomputed) or "
                     "regenerate the subset")


def implausible(energy: float, natoms: int, forces: np.ndarray, stress: np.ndarray) -> str | None:
    """What is unphysical about a structure's labels (see LIMITS), or None."""
    e_atom = abs(energy) / max(natoms, 1)
    if e_atom > LIMITS["energy"]:
        return f"energy {energy:.3g} eV ({e_atom:.3g} eV/atom, limit {LIMITS['energy']:g})"
    fmax = float(np.abs(forces).max(initial=0.0))
    if fmax > LIMITS["force"]:
        return f"a force component of {fmax:.3g} eV/Å (limit {LIMITS['force']:g})"
    smax = float(np.abs(stress).max(initial=0.0))
    if smax > LIMITS["stress"]:
        return f"a stress component of {smax:.3g} eV/Å³ (limit {LIMITS['stress']:g})"
    return None
