"""Batches of periodic structures as concatenated atoms (no padding).

A `Batch` holds B structures with ΣN atoms in total: per-atom tensors are concatenated and
`batch` maps every atom to its structure. Graph models build a periodic radius graph from it
(`matscale.models.graph`), the transformer packs atoms per structure. Units: positions and
cell in Å (cell rows are lattice vectors), energy in eV (total, per structure), forces in
eV/Å, stress in eV/Å³ (3×3, ASE sign convention: negative when the cell is compressed).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import numpy as np
import torch


@dataclass
class Batch:
    numbers: torch.Tensor  # (ΣN,) int64 atomic numbers
    positions: torch.Tensor  # (ΣN, 3) Å, Cartesian
    cell: torch.Tensor  # (B, 3, 3) Å, rows are lattice vectors
    pbc: torch.Tensor  # (B, 3) bool
    natoms: torch.Tensor  # (B,) int64
    batch: torch.Tensor  # (ΣN,) int64 structure index of each atom
    energy: torch.Tensor | None = None  # (B,) eV, total energy
    forces: torch.Tensor | None = None  # (ΣN, 3) eV/Å
    stress: torch.Tensor | None = None  # (B, 3, 3) eV/Å³
    sid: list[str] = field(default_factory=list)  # structure ids, for reporting

    @property
    def num_structures(self) -> int:
        return int(self.natoms.shape[0])

    @property
    def num_atoms(self) -> int:
        return int(self.numbers.shape[0])

    @property
    def ptr(self) -> torch.Tensor:
        """(B+1,) offsets of each structure's first atom."""
        return torch.cat([self.natoms.new_zeros(1), torch.cumsum(self.natoms, 0)])

    @property
    def has_labels(self) -> bool:
        return self.energy is not None and self.forces is not None and self.stress is not None

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "Batch":
        """Move to `device`; floating tensors are cast to `dtype` when given."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                if dtype is not None and value.is_floating_point():
                    value = value.to(device=device, dtype=dtype)
                else:
                    value = value.to(device)
            out[f.name] = value
        return replace(self, **out)

    def pin_memory(self) -> "Batch":
        return replace(self, **{
            f.name: getattr(self, f.name).pin_memory()
            for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)
        })


def _labels(atoms) -> tuple[float, np.ndarray, np.ndarray] | None:
    calc = atoms.calc
    if calc is None:
        return None
    results = getattr(calc, "results", {})
    if not all(k in results for k in ("energy", "forces", "stress")):
        return None
    stress = np.asarray(results["stress"], dtype=np.float64)
    if stress.shape == (6,):
        xx, yy, zz, yz, xz, xy = stress
        stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return float(results["energy"]), np.asarray(results["forces"], dtype=np.float64), stress.reshape(3, 3)


def collate(atoms_list: Sequence, labels: bool | None = None, dtype: torch.dtype = torch.float32) -> Batch:
    """Concatenate `ase.Atoms` into a `Batch`.

    labels: True requires energy/forces/stress on every structure (from its calculator's
    results), False ignores them, None (default) takes them when all structures have them.
    """
    if len(atoms_list) == 0:
        raise ValueError("cannot collate an empty list of structures")
    numbers = [np.asarray(a.numbers, dtype=np.int64) for a in atoms_list]
    natoms = np.array([len(n) for n in numbers], dtype=np.int64)
    lab = [_labels(a) for a in atoms_list] if labels is not False else [None]
    have = all(x is not None for x in lab)
    if labels is True and not have:
        missing = next(i for i, x in enumerate(lab) if x is None)
        raise ValueError(f"structure {missing} has no energy/forces/stress labels")
    out = Batch(
        numbers=torch.from_numpy(np.concatenate(numbers)),
        positions=torch.from_numpy(np.concatenate([a.positions for a in atoms_list])).to(dtype),
        cell=torch.from_numpy(np.stack([np.asarray(a.cell[:], dtype=np.float64) for a in atoms_list])).to(dtype),
        pbc=torch.from_numpy(np.stack([np.asarray(a.pbc, dtype=bool) for a in atoms_list])),
        natoms=torch.from_numpy(natoms),
        batch=torch.repeat_interleave(torch.arange(len(atoms_list)), torch.from_numpy(natoms)),
        sid=[str(a.info.get("sid", i)) for i, a in enumerate(atoms_list)],
    )
    if have and labels is not False:
        out.energy = torch.tensor([x[0] for x in lab], dtype=dtype)
        out.forces = torch.from_numpy(np.concatenate([x[1] for x in lab])).to(dtype)
        out.stress = torch.from_numpy(np.stack([x[2] for x in lab])).to(dtype)
    return out
