"""The book's "Teacher labels" page: the teacher dataset (from its committed summary) and the data
scaling of the same architectures on teacher vs EMT labels, built here so the notebook only calls.

    page = teacher_page(summary=None, teacher_study="teacher", emt_study="default", runs_root="runs")
    page.show("dataset"); page.show("sizes"); ...   sections: dataset, sizes, elements,
        quantities, comparison, fits, conclusion
"""
from __future__ import annotations

import math

import pandas as pd

from matscale.data import elements as E
from matscale.dataset_comparison import compare
from matscale.study import sentences
from matscale.study.pages import Page

QUANTITIES = ("energy_per_atom", "force_norm", "max_force", "pressure", "stress_deviatoric_norm")
EMT, TEACHER = "EMT", "CHGNet teacher"


def _dataset_line(info: dict, stats: pd.DataFrame, counts: pd.DataFrame) -> str:
    synth = info.get("synth") or {}
    n = {split: int(stats.query("quantity == 'natoms' and subset == 'all' and split == @split")["count"].sum())
         for split in ("train", "val")}
    minutes = (synth.get("elapsed_s") or math.nan) / 60
    weights = (synth.get("teacher") or {}).get("weights", "")
    parents = synth.get("parents") or {}
    return (f"Dataset `{info['dataset']}`: {n['train']:,} train + {n['val']:,} val structures from "
            f"{parents.get('train', '?')} + {parents.get('val', '?')} parents, {counts['element'].nunique()} "
            f"elements, {info['size_bytes'] / 1e6:.1f} MB on disk; labelled by {synth.get('calculator', '?')} "
            f"({weights}); generated in {minutes:.1f} min of wall time with {synth.get('workers', '?')} "
            f"worker process(es).")


def teacher_page(summary=None, teacher_study: str = "teacher", emt_study: str = "default",
                 runs_root: str = "runs") -> Page:
    """Everything the page shows; `summary` defaults to the committed book/data/teacher_stats.json."""
    from matscale import charts
    from matscale.charts_elements import periodic_table

    page = Page("teacher")
    info, stats, counts = E.read_summary(summary or E.committed_summary())
    page.md("dataset", _dataset_line(info, stats, counts))
    page.table("sizes", "teacher_sizes", E.subset_sizes(stats))
    page.chart("elements", "teacher_elements", periodic_table(counts.assign(dataset=info["dataset"])))
    for name in QUANTITIES:
        unit = stats.loc[stats["quantity"] == name, "unit"].iloc[0]
        page.md("quantities", f"**{name.replace('_', ' ')} ({unit})**")
        page.table("quantities", f"teacher_{name}", E.quantity_table(stats, name))

    cmp = compare({EMT: emt_study, TEACHER: teacher_study}, kind="data", runs_root=runs_root)
    page.md("finding", sentences.datasets(cmp.summary, [EMT, TEACHER]))
    page.table("comparison", "exponents", cmp.wide())
    page.table("comparison", "fits", cmp.summary[["dataset", "arch", "fixed at", "points", "decades", "law",
                                                  "estimate", "note"]])
    for arch in pd.unique(cmp.summary["arch"]):
        pts = cmp.points[cmp.points["arch"] == arch]
        if len(pts):
            page.chart("fits", f"teacher_data_scaling_{arch}", charts.scaling_fit(
                pts, "n_train", "val_loss", cmp.fits_of(arch), sigma="sigma", color="dataset", span="group",
                title=f"{arch}: validation loss vs training structures D"))
    lines = []
    for arch, rows in cmp.summary.groupby("arch", sort=False):
        est = dict(zip(rows["dataset"], rows["estimate"]))
        lines.append(f"- **{arch}**: α = {est.get(EMT, '—')} on EMT labels, {est.get(TEACHER, '—')} on "
                     "teacher labels.")
    fitted = cmp.summary[cmp.summary["estimate"] != "—"]
    flat = fitted[(fitted["ci_low"] <= 0) & (fitted["ci_high"] >= 0)]
    for r in flat.itertuples():
        lines.append(f"- {r.dataset}, {r.arch}: the 95 % interval of α includes zero, so this series shows no "
                     "measurable data scaling at its size, budget and range of D.")
    missing = cmp.summary[cmp.summary["estimate"] == "—"]
    if len(missing):
        lines.append("- No fit for: " + "; ".join(f"{r.dataset} {r.arch} ({r.note})" for r in missing.itertuples()))
    page.md("conclusion", "\n".join(lines))
    page.comparison = cmp  # for tests and further analysis
    return page
