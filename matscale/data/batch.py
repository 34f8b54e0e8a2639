"""Batches of periodic structures as concatenated atoms (no padding).

A `Batch` holds B structures with ΣN atoms in total: per-atom tensors are concatenated and
`batch` maps every atom to its structure. Graph models build a periodic radius graph from it
(`matscale.models.graph`), the transformer packs atoms per structure. Units: positions and
cell in Å (cell rows are lattice vectors), energy in eV (total, per structure), forces in
eV/Å, stress in eV/Å³ (3×3, ASE sign convention: negative when the cell is compressed).
A structure may lack some labels: its entries are NaN and `has_energy` / `has_forces` /
`has_stress` (B,) are False for it; the loss and metrics skip those terms.
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
    has_energy: torch.Tensor | None = None  # (B,) bool, label present (None: no labels collated)
    has_forces: torch.Tensor | None = None  # (B,) bool
    has_stress: torch.Tensor | None = None  # (B,) bool

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


def _labels(atoms, natoms: int) -> tuple[float, np.ndarray, np.ndarray, tuple[bool, bool, bool]] | None:
    """(energy, forces, 3×3 stress, present flags) with NaN for missing labels; None without any."""
    results = getattr(atoms.calc, "results", None) or {}
    have = tuple(results.get(k) is not None for k in ("energy", "forces", "stress"))
    if not any(have):
        return None
    energy = float(results["energy"]) if have[0] else float("nan")
    forces = np.asarray(results["forces"], dtype=np.float64) if have[1] else np.full((natoms, 3), np.nan)
    stress = np.asarray(results["stress"], dtype=np.float64) if have[2] else np.full((3, 3), np.nan)
    if stress.shape == (6,):
        xx, yy, zz, yz, xz, xy = stress
        stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return energy, forces, stress.reshape(3, 3), have


def collate(atoms_list: Sequence, labels: bool | None = None, dtype: torch.dtype = torch.float32) -> Batch:
    """Concatenate `ase.Atoms` into a `Batch`.

    labels: True requires at least one of energy/forces/stress on every structure (from its
    calculator's results; missing ones become NaN with has_* False), False ignores them,
    None (default) takes them when every structure has at least one.
    """
    if len(atoms_list) == 0:
        raise ValueError("cannot collate an empty list of structures")
    numbers = [np.asarray(a.numbers, dtype=np.int64) for a in atoms_list]
    natoms = np.array([len(n) for n in numbers], dtype=np.int64)
    lab = [_labels(a, len(n)) for a, n in zip(atoms_list, numbers)] if labels is not False else [None]
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
        flags = torch.tensor([x[3] for x in lab], dtype=torch.bool)
        out.has_energy, out.has_forces, out.has_stress = flags[:, 0], flags[:, 1], flags[:, 2]
    return out
