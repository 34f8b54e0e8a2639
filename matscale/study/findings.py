"""The Findings page: the study's data, parameter and compute exponents beside the published ones.

    PUBLISHED -> DataFrame            the published exponents, one row per (source, architecture)
    study_rows(data, params, fronts, joint) -> DataFrame   the study's exponents in the same columns
    table(study, runs_root, archs) -> DataFrame            both, side by side
    findings(study, runs_root, archs) -> Page              the page (finding, table, differences)

Exponents are positive numbers: L ∝ D^-β (data), N^-α (parameters), C^-γ (compute frontier).
The study's come from its fits (a 1-D law per series, the frontier, the joint law), each as
'value [95% CI]' or 'not identified: why'. The published numbers are kept in `PUBLISHED` only,
each with its source; a number the book could not retrieve is missing, never guessed.
"""
from __future__ import annotations

import importlib
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from matscale.study import fits as F
from matscale.study import sentences as S

R = importlib.import_module("matscale.study.results")

NGO = "Ngo & Ravanbakhsh 2025 (arXiv:2510.09768)"
TRIKHA = "Trikha et al. 2025 (arXiv:2509.21811), the seed paper"
NGO_LAWS = "joint law and frontier, with floors"
TRIKHA_LAWS = "1-D power laws, no floor"
# symmetry of each architecture: what the comparison with the published models turns on
KIND = {"equiformer_v2": "equivariant", "esen": "equivariant", "schnet": "invariant", "transformer": "unconstrained",
        "fcn": "unconstrained", "escaip": "unconstrained (attention)"}

COLUMNS = ["source", "architecture", "symmetry", "data β (D)", "parameters α (N)", "compute γ (C)", "laws"]
PUBLISHED = pd.DataFrame([
    {"source": NGO, "architecture": "eSEN", "symmetry": "equivariant", "data": 0.75, "params": 0.82,
     "compute": 0.40, "laws": NGO_LAWS},
    {"source": NGO, "architecture": "MPNN", "symmetry": "unconstrained", "data": 0.31, "params": 0.28,
     "compute": 0.14, "laws": NGO_LAWS},
    # The seed paper fits L = a·x^-b to EquiformerV2 and a transformer on OMat24; its fitted values
    # could not be retrieved where this book is built, so they stay missing (NaN), never guessed.
    {"source": TRIKHA, "architecture": "EquiformerV2", "symmetry": "equivariant", "data": np.nan,
     "params": np.nan, "compute": np.nan, "laws": TRIKHA_LAWS},
    {"source": TRIKHA, "architecture": "transformer", "symmetry": "unconstrained", "data": np.nan,
     "params": np.nan, "compute": np.nan, "laws": TRIKHA_LAWS},
])
NOT_RETRIEVED = "not retrieved (see below)"


def _cell(fit, param: str | None = None) -> str:
    e = S.exponent(fit, param)
    return e.text() if e is not None else "not identified"


def reasons(data_fits: Mapping, param_fits: Mapping, fronts: Mapping) -> list[str]:
    """'SchNet, compute: why' for every exponent of the table that is not identified."""
    out = []
    for arch in dict.fromkeys([*data_fits, *param_fits, *fronts]):
        for what, fit, param in (("data", data_fits.get(arch), None), ("parameters", param_fits.get(arch), None),
                                 ("compute", fronts.get(arch), "gamma")):
            if fit is not None and S.exponent(fit, param) is None:
                out.append(f"{_arch(arch)}, {what}: {S.not_identified(fit, param)}")
    return out


def published() -> pd.DataFrame:
    """PUBLISHED in the page's columns (a missing number reads 'not retrieved')."""
    out = PUBLISHED.rename(columns={"data": COLUMNS[3], "params": COLUMNS[4], "compute": COLUMNS[5]})
    for col in COLUMNS[3:6]:
        out[col] = out[col].map(lambda v: NOT_RETRIEVED if not np.isfinite(v) else f"{v:.2f}")
    return out[COLUMNS]


def study_rows(data_fits: Mapping, param_fits: Mapping, fronts: Mapping, joint_fits: Mapping,
               source: str = "this study") -> pd.DataFrame:
    """Per architecture: its 1-D data and parameter exponents and frontier γ; where its joint law
    is identified, a second row with the joint law's β (D) and α (N)."""
    rows = []
    for arch in dict.fromkeys([*data_fits, *param_fits, *fronts]):
        laws = [f"{kind}: {s.law}" for kind, s in (("D", data_fits.get(arch)), ("N", param_fits.get(arch)))
                if s is not None and getattr(s, "law", None)]
        rows.append({"source": source, "architecture": _arch(arch), "symmetry": KIND.get(arch, "—"),
                     COLUMNS[3]: _cell(data_fits.get(arch)), COLUMNS[4]: _cell(param_fits.get(arch)),
                     COLUMNS[5]: _cell(fronts.get(arch), "gamma"),
                     "laws": "1-D (" + ", ".join(laws) + "); frontier with floor"})
        j = joint_fits.get(arch)
        if j is not None and S.exponent(j, "alpha") is not None and S.exponent(j, "beta") is not None:
            rows.append({"source": f"{source}, joint law", "architecture": _arch(arch),
                         "symmetry": KIND.get(arch, "—"), COLUMNS[3]: _cell(j, "beta"),
                         COLUMNS[4]: _cell(j, "alpha"), COLUMNS[5]: "—", "laws": "joint law, with floor"})
    return pd.DataFrame(rows, columns=COLUMNS)


def _fits(study, runs_root, archs):
    table = R.results(study, runs_root, archs)
    archs = list(pd.unique(R.trainable(table)["arch"])) if archs is None else list(archs)
    curves = R.curves(table, runs_root)
    return (table, curves, F.scaling(table, "data", archs), F.scaling(table, "params", archs),
            F.frontier(table, curves, archs), F.joint(table, archs))


def table(study="default", runs_root="runs", archs: Sequence[str] | None = None) -> pd.DataFrame:
    """The study's exponents and the published ones in one table."""
    _, _, data_fits, param_fits, fronts, joint_fits = _fits(study, runs_root, archs)
    return pd.concat([study_rows(data_fits, param_fits, fronts, joint_fits), published()], ignore_index=True)


def _span(fits: Mapping) -> str:
    spans = [s.span_decades() for s in fits.values() if len(getattr(s, "points", []))]
    if not spans:
        return "0"
    low, high = f"{min(spans):.1f}", f"{max(spans):.1f}"
    return low if low == high else f"{low}–{high}"


def _arch(arch: str) -> str:
    return S.short(arch)


def findings(study="default", runs_root="runs", archs: Sequence[str] | None = None):
    """The Findings page: finding, table, and what differs from the published studies and why."""
    from matscale.study.pages import Page

    table_, curves, data_fits, param_fits, fronts, joint_fits = _fits(study, runs_root, archs)
    page = Page("findings")
    page.md("finding", S.scaling(data_fits, "data"))
    page.md("finding", S.scaling(param_fits, "params"))
    graph = {a: s for a, s in data_fits.items() if S.exponent(s) is not None or "zero-force" not in (s.reason or "")}
    saturation = S.saturation(graph)
    if saturation:
        page.md("finding", "Along the data series (training structures D at equal steps): " + saturation
                + " Where the later drop is within the seed spread, the runs are limited by their step "
                "budget rather than by data, and no data exponent can be measured beyond that point.")
    rows = pd.concat([study_rows(data_fits, param_fits, fronts, joint_fits), published()], ignore_index=True)
    page.table("table", "findings", rows.set_index(["source", "architecture"]))
    why = reasons(data_fits, param_fits, fronts)
    if why:
        page.md("table", "**Not identified** by the study's points, and why:\n\n" + "\n".join(f"- {w}" for w in why))
    floors = sorted({s.law for s in [*data_fits.values(), *param_fits.values()] if getattr(s, "law", None)})
    conv = S.convergence_table(curves)
    still = int((conv["last_drop"] > 0.02).sum()) if len(conv) else 0
    page.md("differences", "\n".join([
        "- **Laws (a definitional difference).** This study's data and parameter exponents come from 1-D "
        f"laws fitted along one series at a time (laws chosen here: {', '.join(floors) or 'none'}); "
        "Ngo & Ravanbakhsh's α and β are the exponents of a joint law with an irreducible floor, fitted to a "
        "grid of runs. A floor takes the part of the loss that no model removes out of the power law, so the "
        "same points give a larger exponent with a floor than without one; the seed paper's 1-D laws have no "
        "floor, as have this study's `power` fits. Only the study's joint-law rows use Ngo & Ravanbakhsh's definition.",
        "- **Budgets.** A point of a scaling law should be a model trained to its plateau. "
        f"{still} of the study's {len(conv)} runs with two or more validations were still improving by more "
        "than 2% at their last validation (page *Training dynamics*); where a series holds the optimiser steps "
        "fixed, its exponent says how far a fixed budget gets with more data or parameters, not how far a "
        "converged model does.",
        f"- **Range.** This study's series span {_span(data_fits)} decades of D and {_span(param_fits)} decades "
        "of N, on two CPU cores: an exponent over so short a range is a local slope with a wide interval, "
        "and it need not hold beyond the points.",
        "- **Loss and data.** The loss here is OMat24's weighted sum (2.5 MAE(E/atom) + 20 L2MAE(F) + "
        "5 MAE(σ_iso) + 5 MAE(σ_aniso)) on EMT-labelled fcc metals; the published losses and datasets differ, "
        "and an exponent depends on which error terms dominate the loss.",
        "- **Architectures.** SchNet is invariant, not equivariant like eSEN nor unconstrained like the MPNN; "
        "the closest published counterparts are EquiformerV2 ↔ eSEN (equivariant, higher order) and the "
        "transformer ↔ the unconstrained MPNN.",
        "- **The seed paper's numbers.** Trikha et al. fit L = a·x^-b to EquiformerV2 and a transformer on "
        "OMat24 data; their fitted exponents could not be retrieved when this page was written, so the "
        "table leaves them out rather than quote them from memory.",
    ]))
    return page


__all__ = ["PUBLISHED", "published", "study_rows", "table", "findings"]
