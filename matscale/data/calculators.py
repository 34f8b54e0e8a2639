"""Label calculators for the synthetic generator: a name -> factory table.

A calculator entry gives a factory returning a fresh ASE calculator (energy eV, forces eV/Å,
stress eV/Å³) and the elements it has parameters for, from which parent structures are built.
`emt` (ASE's effective-medium theory for fcc metals) is the default: cheap and physical.
It is ASE's `EMT` with one change: its neighbour list comes from matscipy (C) instead of
ASE's Python one, which makes small periodic cells 2–4x faster and gives the same labels to
~1e-13 (tests compare the two); `emt-ase` is the unmodified calculator.
`chgnet` and `sevennet` are pretrained universal potentials (optional extra `teacher`, see
`matscale.data.teacher`); their parents come from `matscale.data.prototypes` (many chemistries)
instead of the fcc-metal builder.
Any other calculator plugs in with `register_calculator`, or on the command line as
`module:factory` (the callable may carry an `elements` attribute; else EMT's metals are used).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from matscale.errors import DataError

EMT_METALS: tuple[str, ...] = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")


@dataclass(frozen=True)
class CalculatorSpec:
    name: str
    factory: Callable[[], object]
    elements: tuple[str, ...]
    # parent builder with the signature of parents.make_parent; None: the fcc-metal builder
    parents: Callable | None = None


class MatscipyNeighborList:
    """The part of ASE's NeighborList interface EMT uses, backed by matscipy.neighbours.

    Rebuilt whenever positions, cell or pbc change; neighbours sorted for a fixed order.
    """

    def __init__(self, cutoff: float):
        self.cutoff = float(cutoff)
        self._key = None

    def update(self, atoms) -> bool:
        import numpy as np
        from matscipy.neighbours import neighbour_list

        key = (atoms.positions.tobytes(), atoms.cell.array.tobytes(), atoms.pbc.tobytes())
        if key == self._key:
            return False
        i, j, shift = neighbour_list("ijS", atoms, self.cutoff)
        order = np.lexsort((shift[:, 2], shift[:, 1], shift[:, 0], j, i))
        i, self._j, self._shift = i[order], j[order], shift[order].astype(np.float64)
        self._first = np.searchsorted(i, np.arange(len(atoms) + 1))
        self._key = key
        return True

    def get_neighbors(self, a: int):
        s = slice(self._first[a], self._first[a + 1])
        return self._j[s], self._shift[s]


def _emt_class():
    from ase.calculators.emt import EMT

    class FastEMT(EMT):
        """ASE EMT with a matscipy neighbour list (same potential, same cutoffs)."""

        def initialize(self, atoms):
            super().initialize(atoms)
            self.nl = MatscipyNeighborList(self.rc_list)

    return FastEMT


def _emt():
    return _emt_class()()


def _emt_ase():
    from ase.calculators.emt import EMT

    return EMT()


def _teachers() -> dict[str, CalculatorSpec]:
    from matscale.data import prototypes, teacher

    return {name: CalculatorSpec(name, getattr(teacher, name), teacher.TEACHER_ELEMENTS, prototypes.make_parent)
            for name in teacher.PACKAGES}


CALCULATORS: dict[str, CalculatorSpec] = {
    "emt": CalculatorSpec("emt", _emt, EMT_METALS),
    "emt-ase": CalculatorSpec("emt-ase", _emt_ase, EMT_METALS),
    **_teachers(),
}


def register_calculator(name: str, factory: Callable[[], object], elements: tuple[str, ...]) -> None:
    """Make `name` usable as `synthesize(..., calculator=name)`."""
    CALCULATORS[name] = CalculatorSpec(name, factory, tuple(elements))


def get_calculator(name: str) -> CalculatorSpec:
    """Look up `name` in the table, or import `package.module:factory`. A teacher whose optional
    package is missing raises DataError naming the extra to install."""
    if name in CALCULATORS:
        from matscale.data import teacher

        if name in teacher.PACKAGES and not teacher.available(name):
            teacher._require(name)  # raises the DataError that says what to install
        return CALCULATORS[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise DataError(f"cannot import calculator factory {name!r}: {exc}") from None
        return CalculatorSpec(name, factory, tuple(getattr(factory, "elements", EMT_METALS)))
    raise DataError(
        f"unknown calculator {name!r}; choose one of: {', '.join(CALCULATORS)} "
        "(or give 'package.module:factory')"
    )
