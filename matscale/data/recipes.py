"""OMat24's three sampling strategies, re-enacted on a relaxed parent with any ASE calculator.

- `rattled`: CANDIDATES thermal rattles (per-element Gaussian displacements from the EMT
  thermal table, plus a small random strain), PICKS of them drawn without replacement with
  Boltzmann weights. The weight is importance-corrected for the Gaussian proposal,
  w ∝ exp(−E/k_BT) / q(u, ε), so the picks follow the canonical distribution at T rather
  than piling onto the lowest-energy candidates (a design choice: the paper's formula is
  not known, notes §5).
- `aimd`: a short trajectory (FRAMES frames of 2 fs, every frame kept) from Maxwell–Boltzmann
  velocities: NVT with a Nosé–Hoover chain (tdamp 80 fs, VASP's SMASS=0 period),
  NPT with Langevin BAOAB (T_tau 100 fs ≈ LANGEVIN_GAMMA 10 ps⁻¹, zero external stress).
- `relax_trajectory`: every step of a full-cell relaxation (UnitCellFilter + L-BFGS, ≤ 99
  steps like VASP's NSW=99, ISIF=3) of a mildly rattled (0.1 Å) and strained (±3 %) parent.
OMat24's filters drop any frame with an atomic |F| > 50 eV/Å or a stress component > 80 GPa.
A calculator may also refuse a state by raising `LabelBlowUp` (the teacher guard does): the
candidate is dropped, and a trajectory or relaxation ends at the frame before.
Units: energy eV, forces eV/Å, stress eV/Å³ (Voigt xx yy zz yz xz xy, ASE sign).
"""
from __future__ import annotations

import string
import warnings
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units

from matscale.data.parents import Parent, relax

CANDIDATES = 20  # rattled candidates per parent
PICKS = 5  # rattled structures kept per parent (OMat24: 5 per seed)
STRAIN_SIGMA_1000K = 0.01  # rattled strain component σ at 1000 K, scaled as sqrt(T/1000)
TIMESTEP_FS = 2.0
FRAMES = 50  # aimd frames per trajectory (initial + 49 steps)
NVT_TDAMP_FS = 80.0
NPT_TTAU_FS = 100.0
RELAX_RATTLE_A = 0.10  # Å per component
RELAX_STRAIN = 0.03  # max |strain component|
RELAX_FMAX = 0.05  # eV/Å
RELAX_MAX_STEPS = 99
MAX_FORCE = 50.0  # eV/Å, OMat24 filter
MAX_STRESS = 80.0 * units.GPa  # eV/Å³, OMat24 filter (80 GPa)

# Thermal displacement per Cartesian component (Å) of EMT metals at 300/500/1000 K, measured
# by 32-atom Langevin NVT runs (notes/omat24_data.md §5).
THERMAL_SIGMA: dict[float, dict[str, float]] = {
    300.0: {"Al": .095, "Cu": .066, "Ag": .077, "Au": .071, "Ni": .052, "Pd": .066, "Pt": .063},
    500.0: {"Al": .124, "Cu": .083, "Ag": .095, "Au": .092, "Ni": .067, "Pd": .084, "Pt": .075},
    1000.0: {"Al": .186, "Cu": .119, "Ag": .151, "Au": .130, "Ni": .095, "Pd": .119, "Pt": .107},
}
FALLBACK_SIGMA_1000K = 0.13  # Å, for elements outside the table (other calculators)


class LabelBlowUp(RuntimeError):
    """Raised by a guarded calculator for a state it cannot label (collapse, runaway energy)."""


@dataclass
class Frame:
    """One labelled structure as the generator returns it (compact and picklable)."""

    numbers: np.ndarray
    positions: np.ndarray  # Å
    cell: np.ndarray  # Å, rows are lattice vectors
    energy: float  # eV
    forces: np.ndarray  # eV/Å
    stress: np.ndarray  # (6,) eV/Å³ Voigt, ASE sign
    sid: str
    parent_id: str
    subset: str
    task_type: str


def thermal_sigma(symbols, temperature_K: float) -> np.ndarray:
    """Per-atom displacement σ (Å) at T: the table, else the nearest row scaled by sqrt(T)."""
    t_ref = min(THERMAL_SIGMA, key=lambda t: abs(np.log(t / temperature_K)))
    scale = np.sqrt(temperature_K / t_ref)
    table = THERMAL_SIGMA[t_ref]
    fallback = FALLBACK_SIGMA_1000K * np.sqrt(t_ref / 1000.0)
    return np.array([table.get(s, fallback) * scale for s in symbols])


def _suffix(rng: np.random.Generator) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(alphabet[i] for i in rng.integers(len(alphabet), size=6))


def _passes(forces: np.ndarray, stress: np.ndarray) -> bool:
    fmax = np.sqrt((forces**2).sum(1)).max() if len(forces) else 0.0
    return bool(np.isfinite(forces).all() and np.isfinite(stress).all()
                and fmax <= MAX_FORCE and np.abs(stress).max() <= MAX_STRESS)


def _labels(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy (eV), forces (eV/Å), stress (Voigt-6 eV/Å³) of the current state.

    One state check (get_forces); calculators such as EMT fill energy and stress in the
    same evaluation, so those are read from its results instead of re-checking the state.
    """
    forces = np.array(atoms.get_forces(), dtype=np.float64)
    results = atoms.calc.results
    energy = results["energy"] if "energy" in results else atoms.get_potential_energy()
    stress = results["stress"] if "stress" in results else atoms.get_stress(voigt=True)
    return float(energy), forces, np.array(stress, dtype=np.float64).reshape(6)


def _frame(atoms, energy, forces, stress, sid, parent, subset, task_type) -> Frame:
    return Frame(np.array(atoms.numbers, dtype=np.int64), np.array(atoms.positions, dtype=np.float64),
                 np.array(atoms.cell[:], dtype=np.float64), energy, forces, stress,
                 sid, parent.parent_id, subset, task_type)


def _sym(v6: np.ndarray) -> np.ndarray:
    xx, yy, zz, yz, xz, xy = v6
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def rattled(parent: Parent, temperature_K: float, subset: str, calc, rng: np.random.Generator) -> list[Frame]:
    """PICKS Boltzmann-weighted picks out of CANDIDATES thermal rattles of `parent`."""
    base = parent.atoms
    n = len(base)
    sigma = thermal_sigma(base.get_chemical_symbols(), temperature_K)[:, None]
    s_eps = STRAIN_SIGMA_1000K * np.sqrt(temperature_K / 1000.0)
    kt = units.kB * temperature_K
    cands, logw = [], []
    for _ in range(CANDIDATES):
        eps = rng.normal(0.0, s_eps, 6)
        u = rng.normal(0.0, 1.0, (n, 3)) * sigma
        atoms = base.copy()
        atoms.set_cell(base.cell[:] @ (np.eye(3) + _sym(eps)), scale_atoms=True)
        atoms.positions += u
        atoms.calc = calc
        try:
            energy, forces, stress = _labels(atoms)
        except LabelBlowUp:
            continue
        log_q = -0.5 * float(((u / sigma) ** 2).sum()) - 0.5 * float(((eps / s_eps) ** 2).sum())
        ok = _passes(forces, stress)
        logw.append(-energy / kt - log_q if ok else -np.inf)
        cands.append((atoms, energy, forces, stress))
    logw = np.array(logw)
    keys = logw + rng.gumbel(size=len(logw))  # Gumbel top-k = weighted draw without replacement
    order = [i for i in np.argsort(-keys, kind="stable") if np.isfinite(logw[i])][:PICKS]
    frames = []
    for j, i in enumerate(order):
        atoms, energy, forces, stress = cands[i]
        sid = f"{parent.parent_id}_{j}_0_{subset}_{_suffix(rng)}"
        frames.append(_frame(atoms, energy, forces, stress, sid, parent, subset, "Static"))
    return frames


def aimd(parent: Parent, temperature_K: float, ensemble: str, subset: str, calc, rng: np.random.Generator) -> list[Frame]:
    """Every frame of a FRAMES-frame NVT/NPT trajectory at T started from the relaxed parent."""
    from ase.md.langevinbaoab import LangevinBAOAB
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    atoms = parent.atoms.copy()
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K, rng=rng)
    if len(atoms) > 1:
        Stationary(atoms)
    dt = TIMESTEP_FS * units.fs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ensemble == "nvt":
            md = NoseHooverChainNVT(atoms, dt, temperature_K=temperature_K, tdamp=NVT_TDAMP_FS * units.fs)
        elif ensemble == "npt":
            md = LangevinBAOAB(atoms, dt, temperature_K=temperature_K, externalstress=0.0,
                               T_tau=NPT_TTAU_FS * units.fs, rng=rng)
        else:
            raise ValueError(f"unknown ensemble {ensemble!r}")
        frames: list[Frame] = []

        def record():
            energy, forces, stress = _labels(atoms)
            if _passes(forces, stress):
                sid = f"{parent.parent_id}_0_{md.nsteps}_{subset}_{_suffix(rng)}"
                frames.append(_frame(atoms, energy, forces, stress, sid, parent, subset, "AIMD"))

        md.attach(record, interval=1)
        try:
            md.run(FRAMES - 1)
        except LabelBlowUp:
            pass  # the trajectory ends at its last sane frame
    return frames


def relax_trajectory(parent: Parent, subset: str, calc, rng: np.random.Generator) -> list[Frame]:
    """Every step of a full-cell relaxation of a mildly rattled, strained copy of `parent`."""
    atoms = parent.atoms.copy()
    eps = rng.uniform(-RELAX_STRAIN, RELAX_STRAIN, 6)
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + _sym(eps)), scale_atoms=True)
    atoms.positions += rng.normal(0.0, RELAX_RATTLE_A, atoms.positions.shape)
    frames: list[Frame] = []

    def record(a):
        energy, forces, stress = _labels(a)
        if _passes(forces, stress):
            sid = f"{parent.parent_id}_0_{len(frames)}_{subset}_{_suffix(rng)}"
            frames.append(_frame(a, energy, forces, stress, sid, parent, subset, "Relax"))

    try:
        relax(atoms, calc, fmax=RELAX_FMAX, steps=RELAX_MAX_STEPS, observer=record)
    except LabelBlowUp:
        pass  # the relaxation ends at its last sane step
    return frames
