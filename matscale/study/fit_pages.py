"""The book pages built on the multi-run fits: compute frontier, joint law, architecture
comparison, equivariance (see `matscale.study.pages` for `Page`; all are re-exported there)."""
from __future__ import annotations

import importlib
from typing import Sequence

import numpy as np
import pandas as pd

from matscale.study import fits as F
from matscale.study import sentences as S
from matscale.study import tables as T

R = importlib.import_module("matscale.study.results")  # the module; the package's `results` is the function
from matscale.study.pages import LABELS, PHYSICAL_MEV, Page, _start, physical_errors


def compute_scaling(study="default", runs_root="runs", archs: Sequence[str] | None = None) -> Page:
    """Every run's loss against cumulative FLOPs, the overall and per-architecture Pareto fronts,
    and L(C) = L_inf + F C^-gamma fitted to each front (bootstrap intervals)."""
    from matscale import charts

    page, table, archs = _start("compute_scaling", study, runs_root, archs)
    curves = R.curves(table, runs_root)
    fronts = F.frontier(table, curves, archs)
    rates = S.flops_rates(table)
    page.md("finding", S.frontier(fronts))
    page.md("finding", S.flops_caveat(rates))
    page.table("summary", "frontier", T.frontier_table(fronts))
    page.table("cost", "flops_per_second", rates)
    if curves.empty:
        page.md("all", "No finished runs yet.")
    else:
        front_all = F.overall_front(curves, table)
        page.chart("all", "compute_all", charts.frontier(curves, front_all, None, color="arch",
                                                         title="validation loss vs training FLOPs"))
        page.table("all", "overall_front", front_all.groupby("arch").size().rename("points on the overall front")
                   .to_frame())
    for arch, f in fronts.items():
        page.md("archs", f"### {arch}")
        if f.curves.empty:
            page.md("archs", f"No finished runs: {f.reason}.")
            continue
        if not f.ok:
            page.md("archs", f"No frontier fit: {f.reason}.")
        page.chart("archs", f"compute_{arch}", charts.frontier(f.curves, f.front, f.fit, color="size",
                                                               title=f"{arch}: compute frontier"))
        if f.ok:
            page.md("archs", f"Shown: `{f.fit.formula}`, 95% CI ({f.fit.ci_method}).")
            page.table("archs", f"parameters_{arch}", f.fit.parameters().drop(columns=["law"]).set_index("parameter"))
            note = "; ".join([*f.notes, f.fit.note] if f.fit.note else f.notes)
            if note:
                page.md("archs", f"Note: {note}.")
    return page


def joint_scaling(study="default", runs_root="runs", archs: Sequence[str] | None = None) -> Page:
    """L(N, D) per architecture with slices at each D and N, the compute-optimal allocation and
    the extrapolation check (each series refitted without its largest run)."""
    from matscale import charts

    page, table, archs = _start("joint_scaling", study, runs_root, archs)
    joint = F.joint(table, archs)
    page.md("finding", S.joint(joint))
    for arch, j in joint.items():
        page.md("joint", f"### {arch}")
        if not j.ok:
            page.md("joint", f"No joint fit: {j.reason}.")
            continue
        page.md("joint", f"`{j.fit.formula}`, 95% CI ({j.fit.ci_method}).")
        page.table("joint", f"parameters_{arch}", j.fit.parameters().drop(columns=["law"]).set_index("parameter"))
        if j.fit.note:
            page.md("joint", f"Note: {j.fit.note}.")
        for along, color, fixed in (("params", "D", "data size D"), ("n_train", "N", "model size N")):
            pts, slices = F.joint_slices(j, along=along)
            if slices:
                page.chart("joint", f"joint_{arch}_{'N' if along == 'params' else 'D'}", charts.scaling_fit(
                    pts.rename(columns={along: LABELS[along]}), LABELS[along], "val_loss", slices, color=color,
                    title=f"{arch}: L(N, D) at each {fixed}"))
    page.table("allocation", "exponents", T.allocation_exponents(joint))
    done = R.trainable(table[table["finished"]])
    if len(done) and done["flops"].max() > 0:
        budgets = np.geomspace(done["flops"][done["flops"] > 0].min(), 10 * done["flops"].max(), 4)
        alloc = T.allocation(joint, budgets)
        if len(alloc):
            page.table("allocation", "allocation", alloc.set_index(["arch", "compute C (FLOPs)"]))
    data_fits, param_fits = F.scaling(table, "data", archs), F.scaling(table, "params", archs)
    checks = pd.concat([F.extrapolation(param_fits), F.extrapolation(data_fits)], ignore_index=True)
    page.table("extrapolation", "extrapolation", T.extrapolation_summary(checks).set_index(["arch", "kind"]))
    for check in checks.to_dict("records"):
        fit = check.get("_fit")
        if not hasattr(fit, "predict"):
            continue
        s = (param_fits if check["kind"] == "params" else data_fits)[check["arch"]]
        pts = T.extrapolation_points(s, check["x"]).rename(columns={s.x: LABELS[s.x]})
        page.chart("extrapolation_charts", f"extrapolation_{check['arch']}_{check['kind']}", charts.extrapolation(
            pts, LABELS[s.x], "val_loss", fit, sigma="sigma", x_max=check["x_reach"],
            title=f"{check['arch']}: {check['law']} law fitted to the smaller runs"))
    return page


def architectures(study="default", runs_root="runs", archs: Sequence[str] | None = None) -> Page:
    """Every exponent side by side (table and chart) and the best model of each architecture
    against the closed-form baselines."""
    from matscale import charts

    page, table, archs = _start("architectures", study, runs_root, archs)
    curves = R.curves(table, runs_root)
    data_fits, param_fits = F.scaling(table, "data", archs), F.scaling(table, "params", archs)
    fronts, joint = F.frontier(table, curves, archs), F.joint(table, archs)
    page.md("finding", S.architectures(data_fits, param_fits, table))
    page.table("comparison", "comparison", T.comparison(data_fits, param_fits, fronts, joint).T)
    rows = T.exponent_rows(data_fits, param_fits, fronts)
    if rows.empty:
        page.md("exponents", "No exponent could be fitted yet.")
    else:
        page.chart("exponents", "exponents", charts.exponents(rows, width=240))
    done = R.trainable(table[table["finished"]])
    if done.empty:
        page.md("best", "No finished runs yet.")
    else:
        best = done.loc[done.groupby("arch")["val_loss"].idxmin()]
        rows = physical_errors(pd.concat([best, R.baselines(table).assign(size="—")], ignore_index=True))
        page.table("best", "best", rows[["arch", "size", "frac", "params", "n_train", "val_loss",
                                         *PHYSICAL_MEV]].set_index("arch"))
    return page


def equivariance(study="default", runs_root="runs", archs: Sequence[str] | None = None) -> Page:
    """Rotation errors of every run's best checkpoint (stored measurements): medians per
    architecture, the force error against N and D, and every run."""
    import altair as alt

    from matscale import charts

    page, table, archs = _start("equivariance", study, runs_root, archs)
    eq = R.equivariance(table, archs)
    missing = eq[eq["source"] == "unavailable"] if len(eq) else eq
    if len(missing):
        page.md("summary", f"{len(missing)} finished run(s) have neither a checkpoint nor a stored measurement "
                           "and are left out: " + ", ".join(missing["run_id"]))
    eq = eq[eq["source"] != "unavailable"] if len(eq) else eq
    page.md("finding", S.equivariance(eq))
    if eq.empty:
        page.md("summary", "No measurements.")
        return page
    page.table("summary", "medians", eq.groupby("arch")[["energy_rel", "forces_rel", "stress_rel"]].median()
               .rename(columns=lambda c: f"median {c}"))
    panels = []
    for kind in ("params", "data"):
        pts = T.equivariance_points(eq, table, archs, kind)
        label = LABELS[R.AXES[kind]]
        if len(pts):
            panels.append(charts.scaling_fit(pts, label, "forces_rel", None, sigma="sigma", color="arch", width=260,
                                             height=220, title=f"force equivariance error vs {charts.axis_title(label)}"))
    if panels:
        page.chart("charts", "equivariance_forces", alt.hconcat(*panels))
    # relative errors per run (the absolute ones are in each run's equivariance.json): 11 columns fit the
    # book's column at 1300 px, 14 did not
    page.table("runs", "runs", eq.drop(columns=["source", "energy_abs", "forces_abs", "stress_abs"])
               .sort_values(["arch", "params", "n_train"]).reset_index(drop=True))
    return page


__all__ = ["compute_scaling", "joint_scaling", "architectures", "equivariance"]
