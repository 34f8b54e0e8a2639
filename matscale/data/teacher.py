"""Pretrained universal potentials as label calculators ("teachers"), with a blow-up guard.

Two potentials trained on PBE(+U) DFT of the Materials Project trajectories (MPtrj) ship their
weights inside their PyPI wheels, so they label offline:
- `chgnet`: CHGNet 0.3.0 (package chgnet 0.4.2, weights `chgnet/pretrained/0.3.0/`, BSD-3 style
  licence; ~410k parameters; ~0.05 s for a 16-atom cell on one CPU thread);
- `sevennet`: SevenNet-0 (package sevenn 0.13.0, weights `sevenn/pretrained_potentials/`, MIT;
  ~0.15 s for a 16-atom cell).
Both are optional (`pip install matscale[teacher]`) and imported only when a teacher is asked
for; a missing package raises a DataError naming the extra.

Every teacher is wrapped in `GuardedCalculator`, which refuses to label a state that a
universal potential cannot be trusted on, by raising `recipes.LabelBlowUp`: atoms closer than
MIN_DISTANCE, non-finite positions or results, energies per atom outside ENERGY_PER_ATOM, or
any atomic force above BLOWUP_FORCE. The recipes drop such a candidate or end the trajectory
there (OMat24's own filters, |F| > 50 eV/Å and |σ| > 80 GPa, apply on top).
Units: energy eV, forces eV/Å, stress eV/Å³ (Voigt-6, ASE sign).
"""
from __future__ import annotations

import importlib
import warnings

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from matscale.data.recipes import LabelBlowUp
from matscale.errors import DataError

EXTRA = "teacher"
MIN_DISTANCE = 0.6  # Å: closer pairs are a collapse, not a physical structure
ENERGY_PER_ATOM = (-25.0, 5.0)  # eV/atom: MPtrj's PBE energies lie in about (-15, 0)
BLOWUP_FORCE = 500.0  # eV/Å: ten times OMat24's filter, a sign of a runaway state

# Elements the teacher datasets draw from: 70 elements across s, p, d and f blocks, all well
# represented in MPtrj (noble gases, Tc, Po and the radioactive actinides other than Th, U
# are left out).
TEACHER_ELEMENTS: tuple[str, ...] = (
    "H", "Li", "Be", "B", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "P", "S", "Cl",
    "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br",
    "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I",
    "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Sm", "Gd", "Tb", "Dy", "Ho", "Er", "Yb", "Lu",
    "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Th", "U",
)

# name -> (module to import, PyPI package, version the extra pins, weights that ship in it)
PACKAGES: dict[str, tuple[str, str, str, str]] = {
    "chgnet": ("chgnet", "chgnet", "0.4.2", "CHGNet 0.3.0"),
    "sevennet": ("sevenn", "sevenn", "0.13.0", "SevenNet-0 (11Jul2024)"),
}

_MODELS: dict[str, object] = {}  # per process: the loaded network (stateless in eval mode)


def _require(name: str):
    module, package, version, _ = PACKAGES[name]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DataError(
            f"the {name} teacher needs the optional package {package}=={version} ({exc}); install it with "
            f"`pip install 'matscale[{EXTRA}]'` (or `pip install {package}=={version}`), or use --calculator emt"
        ) from None


def available(name: str) -> bool:
    """Whether teacher `name` can be imported here (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(PACKAGES[name][0]) is not None


def _chgnet():
    if "chgnet" not in _MODELS:
        _require("chgnet")
        from chgnet.model import CHGNet

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _MODELS["chgnet"] = CHGNet.load(model_name="0.3.0", verbose=False, use_device="cpu")
    import contextlib
    import io

    from chgnet.model.dynamics import CHGNetCalculator

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its device and size
        return CHGNetCalculator(_MODELS["chgnet"], use_device="cpu", on_isolated_atoms="ignore")


def _sevennet():
    if "sevennet" not in _MODELS:
        _require("sevennet")
        from sevenn.calculator import SevenNetCalculator

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _MODELS["sevennet"] = SevenNetCalculator("7net-0", device="cpu")
    return _MODELS["sevennet"]  # results are recomputed on every call (see GuardedCalculator)


_BUILDERS = {"chgnet": _chgnet, "sevennet": _sevennet}


class GuardedCalculator(Calculator):
    """A teacher with sanity checks: raises LabelBlowUp instead of returning absurd labels.

    Every call recomputes from scratch through the wrapped calculator (no state carries over
    from one structure to the next), and returns float64 energy, forces and stress.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, name: str, inner, **kwargs):
        super().__init__(**kwargs)
        self.teacher = name
        self.inner = inner

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        if not (np.isfinite(a.positions).all() and np.isfinite(a.cell.array).all()):
            raise LabelBlowUp(f"{self.teacher}: non-finite positions or cell")
        if a.cell.volume < 1e-3:
            raise LabelBlowUp(f"{self.teacher}: collapsed cell (volume {a.cell.volume:.3g} Å³)")
        if len(a) > 1 or a.cell.volume < 8.0:
            from matscipy.neighbours import neighbour_list

            if len(neighbour_list("i", a, MIN_DISTANCE)):
                raise LabelBlowUp(f"{self.teacher}: atoms closer than {MIN_DISTANCE} Å")
        probe = a.copy()
        probe.calc = None
        self.inner.results = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.inner.calculate(probe, ["energy", "forces", "stress"], all_changes)
        r = self.inner.results
        energy = float(np.asarray(r["energy"]).reshape(-1)[0])
        forces = np.asarray(r["forces"], dtype=np.float64).reshape(len(a), 3)
        stress = np.asarray(r["stress"], dtype=np.float64).reshape(-1)
        if stress.shape == (9,):
            s = stress.reshape(3, 3)
            stress = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        if not (np.isfinite(energy) and np.isfinite(forces).all() and np.isfinite(stress).all()):
            raise LabelBlowUp(f"{self.teacher}: non-finite energy, forces or stress")
        lo, hi = ENERGY_PER_ATOM
        if not lo <= energy / len(a) <= hi:
            raise LabelBlowUp(f"{self.teacher}: energy {energy / len(a):.3g} eV/atom outside [{lo}, {hi}]")
        if len(a) and np.sqrt((forces**2).sum(1)).max() > BLOWUP_FORCE:
            raise LabelBlowUp(f"{self.teacher}: a force above {BLOWUP_FORCE} eV/Å")
        self.results = {"energy": energy, "free_energy": energy, "forces": forces, "stress": stress}


def teacher_calculator(name: str) -> GuardedCalculator:
    """A fresh guarded calculator for teacher `name` ('chgnet' or 'sevennet'); the network is
    loaded once per process."""
    if name not in _BUILDERS:
        raise DataError(f"unknown teacher {name!r}; choose one of: {', '.join(_BUILDERS)}")
    return GuardedCalculator(name, _BUILDERS[name]())


def chgnet() -> GuardedCalculator:
    return teacher_calculator("chgnet")


def sevennet() -> GuardedCalculator:
    return teacher_calculator("sevennet")


def versions(name: str) -> dict:
    """Package and weights of teacher `name`, for provenance (imports nothing)."""
    from importlib.metadata import PackageNotFoundError, version

    module, package, pinned, weights = PACKAGES[name]
    try:
        installed = version(package)
    except PackageNotFoundError:
        installed = None
    return {"package": package, "version": installed, "pinned": pinned, "weights": weights}
