"""Relaxed parent structures: the stand-in for OMat24's Alexandria starting structures.

A parent is a periodic crystal of 1 to ~100 atoms built from a prototype (fcc, bcc, hcp,
ordered L1₂ / L1₀ / B2, or a random substitutional alloy on an fcc/bcc/hcp supercell) over the
calculator's elements, then relaxed (positions and cell, `UnitCellFilter` + L-BFGS) with the
label calculator so that it sits in a local minimum, as Alexandria's PBE-relaxed cells do.
Most parents are small (median ≈ 16 atoms, like OMat24's mean of 14); about 1 in 12 is a
primitive 1–4 atom cell so the small-size edge (down to a single atom) is covered.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, reference_states

TINY_FRACTION = 1 / 12  # share of parents kept as primitive 1–4 atom cells
SIZE_MEDIAN = 16  # atoms, log-normal size distribution of the other parents
SIZE_LOG_SIGMA = 0.6
SIZE_MIN, SIZE_MAX = 5, 108  # atoms
RELAX_FMAX = 0.05  # eV/Å, parent relaxation threshold
RELAX_STEPS = 150

# prototype -> (probability, number of elements it takes; 0 means any)
PROTOTYPES: dict[str, tuple[float, int]] = {
    "fcc": (0.30, 0),
    "bcc": (0.12, 0),
    "hcp": (0.13, 0),
    "L12": (0.15, 2),
    "L10": (0.15, 2),
    "B2": (0.15, 2),
}
N_ELEMENTS_P = {1: 0.35, 2: 0.40, 3: 0.15, 4: 0.10}  # elements in a disordered parent


@dataclass
class Parent:
    parent_id: str
    atoms: Atoms  # relaxed, with no calculator attached
    prototype: str


def _volume_per_atom(symbol: str) -> float:
    """Å³ per atom of the element's reference fcc (or other) crystal."""
    ref = reference_states[atomic_numbers[symbol]]
    if ref is not None and ref.get("symmetry") == "fcc":
        return ref["a"] ** 3 / 4
    if ref is not None and ref.get("symmetry") == "bcc":
        return ref["a"] ** 3 / 2
    return 16.0


def _prototype_cell(proto: str, vol: float) -> Atoms:
    """The primitive or conventional cell of `proto` with `vol` Å³ per atom (element placeholder Cu)."""
    if proto == "fcc":
        return bulk("Cu", "fcc", a=(4 * vol) ** (1 / 3))
    if proto == "bcc":
        return bulk("Cu", "bcc", a=(2 * vol) ** (1 / 3))
    if proto == "hcp":
        covera = np.sqrt(8 / 3)
        a = (2 * vol / (np.sqrt(3) / 2 * covera)) ** (1 / 3)
        return bulk("Cu", "hcp", a=a, c=covera * a)
    if proto in ("L12", "L10"):
        return bulk("Cu", "fcc", a=(4 * vol) ** (1 / 3), cubic=True)
    if proto == "B2":
        return bulk("Cu", "bcc", a=(2 * vol) ** (1 / 3), cubic=True)
    raise ValueError(proto)


def _repeats(n0: int, target: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """Supercell repeats (a, b, c) whose atom count n0·abc is closest to `target`."""
    best, cands = None, []
    for a in range(1, 7):
        for b in range(1, a + 1):
            for c in range(1, b + 1):
                err = abs(n0 * a * b * c - target)
                aniso = a / c
                key = (err, aniso)
                if best is None or key < best:
                    best, cands = key, [(a, b, c)]
                elif key == best:
                    cands.append((a, b, c))
    reps = list(cands[int(rng.integers(len(cands)))])
    rng.shuffle(reps)
    return tuple(int(r) for r in reps)


def _pick(rng: np.random.Generator, table: dict) -> object:
    keys = list(table)
    p = np.array([table[k] if not isinstance(table[k], tuple) else table[k][0] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def build_parent(rng: np.random.Generator, elements: tuple[str, ...], min_atoms: int = 1) -> tuple[Atoms, str]:
    """An unrelaxed parent: prototype, composition and supercell drawn from `rng`."""
    proto = str(_pick(rng, PROTOTYPES))
    n_el = PROTOTYPES[proto][1] or int(_pick(rng, N_ELEMENTS_P))
    n_el = min(n_el, len(elements))
    chosen = [elements[i] for i in rng.choice(len(elements), size=n_el, replace=False)]
    if proto in ("L12", "L10", "B2") and n_el < 2:
        proto = "fcc"
    fractions = rng.dirichlet(np.ones(n_el)) if n_el > 1 else np.ones(1)
    vol = float(sum(f * _volume_per_atom(s) for f, s in zip(fractions, chosen)))
    cell = _prototype_cell(proto, vol)
    n0 = len(cell)
    if proto == "L12":
        cell.set_chemical_symbols([chosen[1]] + [chosen[0]] * 3)
    elif proto == "L10":
        cell.set_chemical_symbols([chosen[0], chosen[1], chosen[1], chosen[0]])
    elif proto == "B2":
        cell.set_chemical_symbols(chosen[:2])
    tiny = rng.random() < TINY_FRACTION
    if tiny:
        target = n0
    else:
        target = int(np.clip(round(SIZE_MEDIAN * np.exp(SIZE_LOG_SIGMA * rng.standard_normal())), SIZE_MIN, SIZE_MAX))
    target = max(target, min_atoms)
    atoms = cell.repeat(_repeats(n0, target, rng)) if target > n0 else cell
    if proto in ("fcc", "bcc", "hcp"):
        # disordered (or pure) occupation: each site drawn from the composition
        atoms.set_chemical_symbols([chosen[i] for i in rng.choice(n_el, size=len(atoms), p=fractions)])
        label = proto if n_el == 1 else f"{proto}-random"
    else:
        label = proto
    atoms.pbc = True
    return atoms, label


def relax(atoms: Atoms, calc, fmax: float = RELAX_FMAX, steps: int = RELAX_STEPS, observer=None) -> int:
    """Relax positions and cell in place (UnitCellFilter + L-BFGS); returns the number of steps.

    `observer(atoms)` is called at every step (including the start) when given.
    """
    from ase.filters import UnitCellFilter
    from ase.optimize import LBFGS

    atoms.calc = calc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = LBFGS(UnitCellFilter(atoms), logfile=None)
        if observer is not None:
            opt.attach(lambda: observer(atoms), interval=1)
        opt.run(fmax=fmax, steps=steps)
    return int(opt.nsteps)


def formula_label(atoms: Atoms) -> str:
    """Reduced formula without spaces, e.g. 'AuCu3'."""
    return atoms.get_chemical_formula(mode="metal", empirical=True)


def make_parent(seed: int, index: int, calc, elements: tuple[str, ...], min_atoms: int = 1) -> Parent:
    """Parent number `index` of dataset `seed`: built and relaxed deterministically.

    Its id reads like Alexandria's (`agm…_ABC_…_spg…`): `syn<seed>-<index>_<formula>_<prototype>_n<atoms>`.
    """
    rng = np.random.default_rng([int(seed), int(index), 0])
    atoms, proto = build_parent(rng, elements, min_atoms=min_atoms)
    relax(atoms, calc)
    atoms.calc = None
    pid = f"syn{seed}-{index:07d}_{formula_label(atoms)}_{proto}_n{len(atoms)}"
    return Parent(pid, atoms, proto)
