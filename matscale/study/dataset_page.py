"""The dataset page's validation section: what a study's runs are scored on.

    validation(root, study="default") -> Page   sections finding, selection, subsets, elements, parents

The selection is the one every run of the study validates on — opened exactly as training
opens it (`matscale.train.data.val_selection` of the study's first point: `val_per_parent`
frames of every validation parent, or `val_frac` of the parents, fixed seed) — on the
dataset at `root`, and described by `matscale.data.composition`.
"""
from __future__ import annotations

import importlib
from pathlib import Path

R = importlib.import_module("matscale.study.results")
TOP_PARENTS = 10  # the parents table lists the largest ones only


def _percent(df):
    """`share` (a fraction) as 'share of structures (%)', one decimal."""
    return df.assign(share=(100 * df["share"]).round(1)).rename(columns={"share": "share of structures (%)"})


def _selection_text(keywords: dict) -> str:
    if "per_parent" in keywords:
        return f"`val_per_parent: {keywords['per_parent']}` (that many frames of every validation parent)"
    return f"`val_frac: {keywords['frac']:g}` (that fraction of the validation parents, whole trajectories)"


def validation(root, study="default"):
    """The study's validation selection on the dataset at `root`: parents, subsets, elements."""
    from matscale.data import open_split
    from matscale.data.composition import composition
    from matscale.study.pages import Page
    from matscale.sweep import load
    from matscale.train.data import VAL_SEED, val_selection

    path = R.study_path(study)
    config = load(path).configs[0]
    keywords = val_selection(config)
    subsets = list(config.subsets) if config.subsets else None
    split = open_split(root, "val", subsets=subsets)
    selected = open_split(root, "val", subsets=subsets, seed=VAL_SEED, **keywords)
    comp = composition(selected, split)
    page = Page("dataset_validation")
    page.md("finding", f"Every run of study **{Path(path).stem}** is validated on the same "
                       f"{comp.structures} structures, chosen by {_selection_text(keywords)}: " + comp.summary())
    if not comp.structures:
        return page
    page.table("subsets", "validation_subsets", _percent(comp.subsets).set_index("subset"))
    page.table("elements", "validation_elements", _percent(comp.elements).rename(
        columns={"structures": "structures containing it"}).set_index("element"))
    top = comp.parents.head(TOP_PARENTS).assign(share=lambda d: d["structures"] / comp.structures)
    page.md("parents", (f"The {len(top)} largest of the {comp.parents_covered} parents in the selection "
                        f"(together {100 * top['share'].sum():.0f}% of its structures):")
            if len(top) < comp.parents_covered else f"The {len(top)} parents in the selection:")
    page.table("parents", "validation_parents", _percent(top).set_index("parent"))
    return page


__all__ = ["validation"]
