"""Multi-chemistry parent crystals for teacher-labelled datasets (Alexandria's role in OMat24).

A parent is drawn from one of PROTOTYPES, each with the chemistry it is common for: elemental
metals (fcc/bcc/hcp) and their random alloys, ordered intermetallics (L1₂, L1₀, B2), diamond
(C, Si, Ge, Sn), rocksalt (alkali halides and hydrides, alkaline-earth/transition-metal
chalcogenides, nitrides and carbides), zincblende and wurtzite (III-V, II-VI, I-VII, SiC),
CsCl, fluorite and anti-fluorite, rutile, cubic perovskite ABX₃ and spinel AB₂X₄ (primitive
14-atom cell). Lattice constants are estimated from ASE's covalent radii (nearest-neighbour
distance ≈ r_A + r_B), improved by a 5-point volume scan and relaxed with the teacher (cell and
positions, UnitCellFilter + L-BFGS, at most RELAX_STEPS steps) on the primitive cell, which is
then repeated to the parent's size; random alloys are relaxed as supercells. A parent the teacher
cannot relax sanely (a blow-up, residual forces above MAX_RESIDUAL_FORCE, a volume off the estimate
by more than VOLUME_RANGE) is redrawn, deterministically, up to ATTEMPTS times.
Sizes: log-normal, median SIZE_MEDIAN atoms, clipped to [SIZE_MIN, SIZE_MAX] (the teachers' cost
grows faster than linearly with size); TINY_FRACTION of parents stay primitive cells.
"""
from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii, reference_states

from matscale.data.parents import Parent, _repeats, formula_label, relax
from matscale.data.recipes import LabelBlowUp
from matscale.errors import DataError

SIZE_MEDIAN = 10
SIZE_LOG_SIGMA = 0.5
SIZE_MIN, SIZE_MAX = 4, 32
TINY_FRACTION = 1 / 10
RELAX_FMAX = 0.1  # eV/Å
RELAX_STEPS = 30
SCAN = (0.88, 0.94, 1.0, 1.06, 1.12)  # lattice-constant factors of the volume scan
MAX_RESIDUAL_FORCE = 1.0  # eV/Å after relaxation
VOLUME_RANGE = (0.4, 2.5)  # relaxed / estimated volume
ATTEMPTS = 8

ALKALI = ("Li", "Na", "K", "Rb", "Cs")
ALKALINE = ("Be", "Mg", "Ca", "Sr", "Ba")
TM = ("Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Y", "Zr", "Nb", "Mo", "Ru", "Rh", "Pd",
      "Ag", "Cd", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg")
RARE = ("La", "Ce", "Pr", "Nd", "Sm", "Gd", "Tb", "Dy", "Ho", "Er", "Yb", "Lu", "Th", "U")
POST = ("Al", "Ga", "In", "Tl", "Sn", "Pb", "Bi")
METALS = ALKALI + ALKALINE + TM + RARE + POST
CHALCOGEN = ("O", "S", "Se", "Te")
HALOGEN = ("F", "Cl", "Br", "I")

# prototype -> (probability, [(role 1 elements, role 2 elements, ...), ...] chemistries)
PROTOTYPES: dict[str, tuple[float, list[tuple[tuple[str, ...], ...]]]] = {
    "elemental": (0.10, [(METALS,)]),
    "alloy": (0.09, [(METALS,)]),
    "L12": (0.03, [(TM + POST + RARE, TM + POST)]),
    "L10": (0.03, [(TM + POST, TM + POST)]),
    "B2": (0.04, [(TM + POST + ALKALINE + RARE, TM + POST)]),
    "diamond": (0.03, [(("C", "Si", "Ge", "Sn"),)]),
    "rocksalt": (0.13, [(ALKALI, HALOGEN + ("H",)), (ALKALINE + ("Mn", "Fe", "Co", "Ni", "Cd", "Eu", "Pb", "Sn"), CHALCOGEN),
                        (("Sc", "Ti", "V", "Cr", "Zr", "Nb", "Hf", "Ta") + RARE, ("N", "C", "P", "As", "Sb", "Bi")),
                        (("Ag",), ("F", "Cl", "Br"))]),
    "zincblende": (0.08, [(("B", "Al", "Ga", "In"), ("N", "P", "As", "Sb")), (("Zn", "Cd", "Hg", "Be", "Mg"), CHALCOGEN),
                          (("Cu", "Ag"), ("Cl", "Br", "I")), (("Si", "Ge"), ("C",))]),
    "wurtzite": (0.06, [(("Al", "Ga", "In", "B"), ("N", "P")), (("Zn", "Cd", "Be", "Mg"), CHALCOGEN)]),
    "CsCl": (0.05, [(("Cs", "Rb", "Tl", "K"), ("Cl", "Br", "I"))]),
    "fluorite": (0.07, [(("Ca", "Sr", "Ba", "Cd", "Pb", "Hg"), ("F", "Cl")), (("Zr", "Hf", "Ce", "Th", "U", "Pr"), ("O",)),
                        (("Pt", "Au", "Ir", "Rh", "Co", "Ni"), ("Al", "Ga", "In", "Si", "Ge", "Sn"))]),
    "antifluorite": (0.04, [(ALKALI, CHALCOGEN), (("Mg", "Be"), ("Si", "Ge", "Sn"))]),
    "rutile": (0.07, [(("Ti", "Sn", "Ru", "Ir", "Mn", "Cr", "V", "Ge", "Pb", "Nb", "Os", "Mo", "W", "Re", "Rh", "Ta"), ("O",)),
                      (("Mg", "Zn", "Ni", "Co", "Fe", "Mn", "Pd"), ("F",))]),
    "perovskite": (0.11, [(("Ca", "Sr", "Ba", "Pb", "La", "Ce", "Nd", "Sm", "Gd", "Y", "Bi"),
                           ("Ti", "Zr", "Hf", "Sn", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Al", "Ga", "Sc", "Nb", "Ta", "Ru", "Rh", "In"),
                           ("O",)),
                          (("Na", "K", "Rb", "Cs"), ("Mg", "Zn", "Ni", "Co", "Fe", "Mn", "Ca", "Cd", "Cu"), ("F", "Cl")),
                          (("Na", "K", "Li"), ("Nb", "Ta", "Sb", "Os", "Re", "W"), ("O",))]),
    "spinel": (0.07, [(("Mg", "Zn", "Fe", "Co", "Ni", "Mn", "Cu", "Cd"),
                       ("Al", "Cr", "Fe", "Ga", "Mn", "Co", "V", "Ti", "Rh", "In", "Sc"), ("O", "S", "Se")),
                      (("Li",), ("Mn", "Ti", "Co", "V"), ("O",))]),
}
N_ALLOY_P = {2: 0.6, 3: 0.3, 4: 0.1}
_HCP_COVERA = float(np.sqrt(8 / 3))


def _radius(symbol: str) -> float:
    return float(covalent_radii[atomic_numbers[symbol]])


def _elemental_structure(symbol: str, rng: np.random.Generator) -> str:
    ref = reference_states[atomic_numbers[symbol]]
    sym = ref.get("symmetry") if ref else None
    return sym if sym in ("fcc", "bcc", "hcp") else str(rng.choice(["fcc", "bcc", "hcp"]))


def _prototype(proto: str, el: list[str], rng: np.random.Generator) -> Atoms:
    """The primitive (or small conventional) cell of `proto` with elements `el`, at a rough scale."""
    from ase.spacegroup import crystal

    a = 4.0
    if proto in ("elemental", "alloy"):
        s = _elemental_structure(el[0], rng)
        cell = bulk(el[0], s, a=a, c=_HCP_COVERA * a) if s == "hcp" else bulk(el[0], s, a=a)
        cell.info["lattice"] = s
        return cell
    if proto in ("L12", "L10"):
        cell = bulk("Cu", "fcc", a=a, cubic=True)
        cell.set_chemical_symbols([el[1]] + [el[0]] * 3 if proto == "L12" else [el[0], el[1], el[1], el[0]])
        return cell
    if proto == "B2":
        return bulk(el[0] + el[1], "cesiumchloride", a=a)
    if proto == "CsCl":
        return bulk(el[0] + el[1], "cesiumchloride", a=a)
    if proto == "diamond":
        return bulk(el[0], "diamond", a=a)
    if proto in ("rocksalt", "zincblende"):
        return bulk(el[0] + el[1], proto, a=a)
    if proto == "wurtzite":
        return bulk(el[0] + el[1], "wurtzite", a=a, c=_HCP_COVERA * a, u=0.375)
    if proto == "fluorite":  # A on the fcc sites, X in the tetrahedral holes
        return bulk(f"{el[0]}{el[1]}2", "fluorite", a=a)
    if proto == "antifluorite":  # A₂X: X on the fcc sites
        return bulk(f"{el[1]}{el[0]}2", "fluorite", a=a)
    if proto == "rutile":
        return crystal([el[0], el[1]], basis=[(0, 0, 0), (0.305, 0.305, 0)], spacegroup=136,
                       cellpar=[a, a, 0.65 * a, 90, 90, 90])
    if proto == "perovskite":
        return crystal(el, basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], spacegroup=221, cellpar=[a] * 3 + [90] * 3)
    if proto == "spinel":  # origin choice 2: A 8a, B 16d, X 32e (u ≈ 0.26)
        return crystal(el, basis=[(0.125, 0.125, 0.125), (0.5, 0.5, 0.5), (0.26, 0.26, 0.26)], spacegroup=227,
                       setting=2, cellpar=[2.0 * a] * 3 + [90] * 3, primitive_cell=True)
    raise ValueError(proto)


def estimate_scale(atoms: Atoms) -> float:
    """Factor bringing each atom's nearest-neighbour distance to r_A + r_B (median over atoms)."""
    from ase.neighborlist import neighbor_list

    r = np.array([_radius(s) for s in atoms.get_chemical_symbols()])
    cutoff = 1.5 * float(np.cbrt(atoms.get_volume() / len(atoms))) + 1.0
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    ratios = []
    for a in range(len(atoms)):
        mask = i == a
        if mask.any():
            k = np.argmin(d[mask])
            ratios.append((r[a] + r[j[mask][k]]) / d[mask][k])
    return float(np.median(ratios)) if ratios else 1.0


def _scaled(atoms: Atoms, factor: float) -> Atoms:
    out = atoms.copy()
    out.set_cell(atoms.cell[:] * factor, scale_atoms=True)
    return out


def _pick(rng: np.random.Generator, weights: dict) -> str:
    keys = list(weights)
    p = np.array([weights[k][0] if isinstance(weights[k], tuple) else weights[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _choose_elements(proto: str, rng: np.random.Generator, allowed: set[str]) -> list[str] | None:
    options = []
    for chem in PROTOTYPES[proto][1]:
        roles = [tuple(e for e in role if e in allowed) for role in chem]
        if all(roles):
            options.append(roles)
    if not options:
        return None
    roles = options[int(rng.integers(len(options)))]
    if proto == "alloy":
        n = min(int(_pick(rng, N_ALLOY_P)), len(roles[0]))
        return [str(e) for e in rng.choice(roles[0], size=n, replace=False)]
    chosen: list[str] = []
    for role in roles:
        free = [e for e in role if e not in chosen] or list(role)
        chosen.append(str(free[int(rng.integers(len(free)))]))
    if len(set(chosen)) < len(chosen):
        return None
    return chosen


def _target_size(rng: np.random.Generator, n0: int, min_atoms: int) -> int:
    if rng.random() < TINY_FRACTION:
        return max(n0, min_atoms)
    n = int(np.clip(round(SIZE_MEDIAN * np.exp(SIZE_LOG_SIGMA * rng.standard_normal())), SIZE_MIN, SIZE_MAX))
    return max(n, min_atoms, n0)


def _energy(atoms: Atoms, calc) -> float:
    atoms.calc = calc
    try:
        return float(atoms.get_potential_energy())
    except LabelBlowUp:
        return np.inf


def _settle(atoms: Atoms, calc) -> Atoms:
    """Volume scan around the radius estimate, then a bounded relaxation; LabelBlowUp when the
    teacher cannot settle it (no sane volume, residual forces, a volume far off the estimate)."""
    estimate = _scaled(atoms, estimate_scale(atoms))
    energies = [_energy(_scaled(estimate, f), calc) for f in SCAN]
    best = int(np.argmin(energies))
    if not np.isfinite(energies[best]):
        raise LabelBlowUp("no sane volume in the scan")
    out = _scaled(estimate, SCAN[best])
    relax(out, calc, fmax=RELAX_FMAX, steps=RELAX_STEPS)
    forces = out.get_forces()
    ratio = out.get_volume() / estimate.get_volume()
    if np.sqrt((forces**2).sum(1)).max() > MAX_RESIDUAL_FORCE or not VOLUME_RANGE[0] <= ratio <= VOLUME_RANGE[1]:
        raise LabelBlowUp("relaxation did not settle")
    out.calc = None
    return out


def draw_parent(rng: np.random.Generator, elements: tuple[str, ...],
                min_atoms: int = 1) -> tuple[Atoms, tuple[int, int, int], str]:
    """An unrelaxed parent drawn from `rng`: (cell to relax, supercell repeats, prototype label).

    Ordered prototypes return their primitive cell (relaxed, then repeated); random alloys their
    supercell with repeats (1, 1, 1)."""
    allowed = set(elements)
    for _ in range(50):  # draw a prototype whose chemistry the element set allows
        proto = _pick(rng, PROTOTYPES)
        chosen = _choose_elements(proto, rng, allowed)
        if chosen is not None:
            break
    else:
        raise DataError(f"no parent prototype fits the elements {', '.join(elements)}")
    cell = _prototype(proto, chosen, rng)
    cell.pbc = True
    target = _target_size(rng, len(cell), min_atoms)
    reps = _repeats(len(cell), target, rng) if target > len(cell) else (1, 1, 1)
    if proto == "alloy":
        atoms = cell.repeat(reps)
        fractions = rng.dirichlet(np.ones(len(chosen)))
        atoms.set_chemical_symbols([chosen[k] for k in rng.choice(len(chosen), size=len(atoms), p=fractions)])
        return atoms, (1, 1, 1), f"{cell.info['lattice']}-random"
    return cell, reps, cell.info.get("lattice", proto)


def drawn_elements(seed: int, parents: dict[int, int], elements: tuple[str, ...]) -> tuple[str, ...]:
    """Elements of the first-attempt draws of parents {index: min_atoms} of dataset `seed`
    (no calculator needed; a parent the teacher rejects is redrawn, rarely, with other elements)."""
    found: set[str] = set()
    for index, min_atoms in parents.items():
        atoms, _, _ = draw_parent(np.random.default_rng([int(seed), int(index), 0, 0]), elements, min_atoms)
        found |= set(atoms.get_chemical_symbols())
    return tuple(e for e in elements if e in found)


def build_parent(rng: np.random.Generator, calc, elements: tuple[str, ...], min_atoms: int = 1) -> tuple[Atoms, str]:
    """A relaxed parent drawn from `rng`: (atoms without calculator, prototype label)."""
    cell, reps, label = draw_parent(rng, elements, min_atoms)
    return _settle(cell, calc).repeat(reps), label


def constants() -> dict:
    """The builder's settings, recorded in synth.json (they enter the dataset's fingerprint)."""
    names = ["SIZE_MEDIAN", "SIZE_LOG_SIGMA", "SIZE_MIN", "SIZE_MAX", "TINY_FRACTION", "RELAX_FMAX", "RELAX_STEPS",
             "MAX_RESIDUAL_FORCE", "ATTEMPTS"]
    out = {n: globals()[n] for n in names}
    out.update(SCAN=list(SCAN), VOLUME_RANGE=list(VOLUME_RANGE),
               PROTOTYPES={k: v[0] for k, v in PROTOTYPES.items()}, VERSION=1)
    return out


_CACHE: dict[tuple, Parent] = {}  # the last parents built in this process (aimd jobs share one)
_CACHE_SIZE = 4


def make_parent(seed: int, index: int, calc, elements: tuple[str, ...], min_atoms: int = 1) -> Parent:
    """Parent number `index` of dataset `seed` (same contract as `parents.make_parent`):
    `syn<seed>-<index>_<formula>_<prototype>_n<atoms>`, redrawn while the teacher rejects it.
    Deterministic, so the few most recent ones are kept and reused (as copies)."""
    key = (int(seed), int(index), tuple(elements), int(min_atoms), getattr(calc, "teacher", type(calc).__name__))
    if key in _CACHE:
        p = _CACHE[key]
        return Parent(p.parent_id, p.atoms.copy(), p.prototype)
    parent = _make_parent(seed, index, calc, elements, min_atoms)
    _CACHE[key] = Parent(parent.parent_id, parent.atoms.copy(), parent.prototype)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    return parent


def _make_parent(seed: int, index: int, calc, elements: tuple[str, ...], min_atoms: int = 1) -> Parent:
    for attempt in range(ATTEMPTS):
        rng = np.random.default_rng([int(seed), int(index), 0, attempt])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                atoms, proto = build_parent(rng, calc, elements, min_atoms=min_atoms)
        except LabelBlowUp:
            continue
        pid = f"syn{seed}-{index:07d}_{formula_label(atoms)}_{proto}_n{len(atoms)}"
        return Parent(pid, atoms, proto)
    raise DataError(f"parent {index} of seed {seed}: the calculator rejected {ATTEMPTS} candidate parents")
