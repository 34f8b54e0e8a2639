"""One call per book page: everything a study page shows, built here and tested.

    page = pages.data_scaling(study, runs_root, archs)   # -> Page
    page.show("fits")                                     # in the notebook: one section
    page.tables["summary"], page.charts["data_scaling"], page.text   # for tests and reuse
    page.finding                                          # the sentences the page opens with

A `Page` is an ordered set of sections; each holds markdown, tables (a fit is a tidy parameter
table and one short note, never lmfit's text report) and charts (a chart's name is its figure
file, `_build/figures/<name>.svg`). The notebooks only narrate and call `show`, so what a
page computes lives in one tested place.
Pages: study, training_dynamics, data_scaling, parameter_scaling, compute_scaling,
joint_scaling, architectures, equivariance (dataset: matscale.study.dataset_page).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from matscale.study import fits as F
from matscale.study import sentences as S
from matscale.study import tables as T

R = importlib.import_module("matscale.study.results")  # the module; the package's `results` is the function

PHYSICAL_MEV = {"energy MAE (meV/atom)": "val_energy_mae_eV_atom", "force L2MAE (meV/Å)": "val_force_l2mae_eV_A",
                "stress MAE (meV/Å³)": "val_stress_mae_eV_A3"}
LABELS = {"n_train": "training_structures", "params": "non_embedding_parameters"}


@dataclass
class Page:
    """What one book page shows, section by section (items: (kind, name, value))."""
    name: str
    sections: dict[str, list[tuple[str, str | None, Any]]] = field(default_factory=dict)

    def add(self, section: str, kind: str, value: Any, name: str | None = None) -> Any:
        self.sections.setdefault(section, []).append((kind, name, value))
        return value

    def md(self, section: str, text: str) -> None:
        self.add(section, "md", text)

    def table(self, section: str, name: str, df: pd.DataFrame) -> pd.DataFrame:
        return self.add(section, "table", df, name)

    def chart(self, section: str, name: str, chart) -> None:
        self.add(section, "chart", chart, name)

    def print(self, section: str, text: str) -> None:
        self.add(section, "print", text)

    def _items(self, kind: str):
        return [(n, v) for items in self.sections.values() for k, n, v in items if k == kind]

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        return dict(self._items("table"))

    @property
    def charts(self) -> dict[str, Any]:
        return dict(self._items("chart"))

    @property
    def finding(self) -> str:
        """The page's finding: the one or two sentences it opens with (section "finding")."""
        return "\n\n".join(str(v) for k, _, v in self.sections.get("finding", []) if k == "md")

    @property
    def text(self) -> str:
        return "\n\n".join(str(v) for items in self.sections.values() for k, _, v in items if k in ("md", "print"))

    def show(self, section: str) -> None:
        """Display one section in a notebook (charts also saved as figure files)."""
        import matscale.book
        from IPython.display import Markdown, display

        for i, (kind, name, value) in enumerate(self.sections.get(section, [])):
            if kind == "md" and section == "finding" and i == 0:
                display(Markdown(f"**Finding.** {value}"))
            elif kind == "md":
                display(Markdown(value))
            elif kind == "print":
                print(value)
            elif kind == "chart":
                matscale.book.show(value, name)
            else:
                display(value)


def configure() -> None:
    """Notebook display settings of the study pages: 4-digit tables; the fits' interval search
    probes far out and overflows harmlessly (each fit reports its own problems in its table)."""
    import warnings

    pd.set_option("display.precision", 4)
    pd.set_option("display.max_colwidth", None)  # a fit's reason in full: long cells wrap (matscale-book.css)
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"matscale\.fit")


# -- shared parts ------------------------------------------------------------------------------------
def _start(name: str, study, runs_root, archs) -> tuple[Page, pd.DataFrame, list[str]]:
    """A page with its status line, the results table and the architectures shown."""
    table = R.results(study, runs_root, archs)
    archs = list(pd.unique(R.trainable(table)["arch"])) if archs is None else list(archs)
    page = Page(name)
    page.md("status", f"Study **{Path(str(study)).stem}**: {len(table)} planned runs, "
                      f"{int(table['finished'].sum())} finished, architectures: {', '.join(archs)}.")
    return page, table, archs


def physical_errors(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with the best checkpoint's errors in meV units (energy/atom, force L2, stress)."""
    return rows.assign(**{label: 1e3 * rows[col] for label, col in PHYSICAL_MEV.items()})


def _floor(table: pd.DataFrame) -> dict[str, float]:
    """The closed-form baselines as dashed reference lines: label -> validation loss."""
    return {f"{b.arch} baseline (frac {b.frac:g})": b.val_loss for b in R.baselines(table).itertuples()}


# -- study overview ----------------------------------------------------------------------------------
def study(study="default", runs_root="runs", archs: Sequence[str] | None = None, parallel: int | None = None) -> Page:
    """The study file, the plan per architecture, where it stands, its cost, the grid, every run."""
    from matscale import charts
    from matscale.sweep import load

    page, table, archs = _start("study", study, runs_root, archs)
    page.md("finding", S.study(table))
    path = R.study_path(study)
    page.md("file", f"`{path.name}`\n\n```yaml\n{path.read_text().strip()}\n```")
    plan = R.plan(study)
    plan = plan[plan["arch"].isin(archs + R.baseline_archs(plan["arch"]))]
    join = lambda values: ", ".join(str(v) for v in values)  # noqa: E731
    steps = plan["max_steps"].where(plan["max_steps"] > 0, plan["epochs"].astype(str) + " epochs") \
        if "max_steps" in plan else plan["epochs"].astype(str) + " epochs"
    page.table("plan", "plan", plan.assign(steps=steps.astype(str)).groupby(["arch", "role"], sort=False).agg(
        sizes=("size", lambda s: join(dict.fromkeys(s))), fractions=("frac", lambda s: join(f"{v:g}" for v in sorted(set(s)))),
        seeds=("seed", lambda s: join(sorted(set(s)))), lr=("lr", lambda s: join(f"{v:g}" for v in sorted(set(s)))),
        steps=("steps", lambda s: join(dict.fromkeys(s))), runs=("run_id", "count")))
    page.table("progress", "status", R.status_table(table))
    done = table[table["finished"]]
    if parallel is None:  # as the study ran it: the sweep file's local.max_parallel
        parallel = int(load(path).local.get("max_parallel") or 1)
    wall = done["wall_s"].sum()
    page.md("progress", f"Finished runs took **{wall / 60:.1f} minutes** of single-run wall time in total "
                      f"({wall / 60 / parallel:.1f} minutes with {parallel} run(s) at a time) and "
                      f"**{done['flops'].sum():.3g} training FLOPs**.")
    failed = table[table["status"] == "failed"]
    if len(failed):
        page.md("progress", "**Failed runs** (`python -m matscale sweep ... --restart-failed` retries them):")
        page.table("progress", "failed", failed[["run_id", "error"]])
    main = R.with_role(done)  # the checks' runs are no grid
    grid = [F.joint_points(runs).assign(arch=arch) for arch, runs in R.trainable(main).groupby("arch", sort=False)]
    grid = pd.concat(grid, ignore_index=True).rename(columns={"n": "seeds"}) if grid else pd.DataFrame()
    if grid.empty:
        page.md("grid", "No finished trainable runs yet: run the study first (`make study`).")
    else:
        page.chart("grid", "study_grid", charts.study_grid(grid))
    columns = [c for c in ["arch", "role", "size", "frac", "seed", "lr", "status", "params", "n_train", "steps",
                           "wall_s", "val_loss", "run_id"] if c in table]
    page.table("runs", "runs", table[columns].sort_values(["arch", "frac", "params"]).reset_index(drop=True))
    return page


# -- training dynamics -------------------------------------------------------------------------------
def training_dynamics(study="default", runs_root="runs", archs: Sequence[str] | None = None) -> Page:
    """Per architecture: loss curves of its sizes, loss parts and physical errors of its largest
    model, loss curves of its data fractions; the final errors of every run."""
    page, table, archs = _start("training_dynamics", study, runs_root, archs)
    curves = R.curves(table, runs_root)
    page.md("finding", S.convergence(curves))
    base = R.baselines(table)
    if len(base):
        page.md("status", "Closed-form baselines (validation loss every model must beat): "
                + ", ".join(f"{r.arch} {r.val_loss:.4g}" for r in base.itertuples()))
    for arch in archs:
        page.md("archs", f"### {arch}")
        _dynamics(page, table, curves, arch)
    done = physical_errors(R.trainable(table[table["finished"]]))
    page.table("errors", "errors", done[["arch", "size", "frac", "seed", "params", "n_train", "val_loss",
                                         *PHYSICAL_MEV]].sort_values(["arch", "params", "n_train"]).reset_index(drop=True))
    from matscale.study.checks import lr_check

    lr = lr_check(table[table["arch"].isin(archs + R.baseline_archs(table["arch"]))])
    if len(lr):
        page.table("lr", "lr_check", lr.set_index(["arch", "size", "lr"]))
    else:
        page.md("lr", "This study has no learning-rate check (no runs with role `lr`).")
    return page


def _dynamics(page: Page, table: pd.DataFrame, curves: pd.DataFrame, arch: str) -> None:
    from matscale import charts

    param_runs, data_runs = R.series(table, arch, "params"), R.series(table, arch, "data")
    if param_runs.empty:
        page.md("archs", f"**{arch}**: no finished runs yet.")
        return
    c = curves[curves["arch"] == arch]
    sizes = c[c["run_id"].isin(param_runs["run_id"])].copy()
    sizes["run"] = sizes["size"] + " (N=" + sizes["params"].map("{:.3g}".format) + ")"
    frac = param_runs["series_at"].iloc[0]
    page.chart("archs", f"dynamics_{arch}_sizes", charts.loss_curves(
        sizes, x="samples_seen", components=False, run="run", title=f"{arch}: total loss, every size at frac {frac:g}"))
    largest = param_runs.sort_values(["params", "seed"]).iloc[-1]
    parts = c[c["run_id"] == largest["run_id"]].drop(columns=["run_id"])
    page.chart("archs", f"dynamics_{arch}_components", charts.loss_curves(
        parts, x="samples_seen", title=f"{arch}-{largest['size']} at frac {frac:g}: loss and its parts"))
    page.chart("archs", f"dynamics_{arch}_physical", charts.loss_curves(
        parts, x="samples_seen", metrics_to_plot=["energy_mae_eV_atom", "force_l2mae_eV_A", "stress_mae_eV_A3"],
        title=f"{arch}-{largest['size']}: errors in physical units"))
    if len(data_runs):
        fr = c[c["run_id"].isin(data_runs["run_id"])].copy()
        fr["run"] = "frac " + fr["frac"].map("{:g}".format) + " (D=" + fr["n_train"].map("{:.0f}".format) + ")"
        page.chart("archs", f"dynamics_{arch}_fractions", charts.loss_curves(
            fr, x="samples_seen", components=False, run="run",
            title=f"{arch}-{data_runs['series_at'].iloc[0]}: total loss, every data fraction"))


# -- 1-D scaling ---------------------------------------------------------------------------------------
def data_scaling(study="default", runs_root="runs", archs: Sequence[str] | None = None) -> Page:
    """Loss against training structures D at a fixed size: fits, chart, AICc per architecture."""
    return _scaling("data", study, runs_root, archs)


def parameter_scaling(study="default", runs_root="runs", archs: Sequence[str] | None = None) -> Page:
    """Loss against non-embedding parameters N at a fixed data fraction."""
    return _scaling("params", study, runs_root, archs)


def _scaling(kind: str, study, runs_root, archs) -> Page:
    from matscale import charts

    name = "data_scaling" if kind == "data" else "parameter_scaling"
    page, table, archs = _start(name, study, runs_root, archs)
    fits = F.scaling(table, kind, archs)
    page.md("finding", S.scaling(fits, kind))
    if kind == "data":
        learned = {a: s for a, s in fits.items() if "zero-force" not in (s.reason or "")}
        if S.saturation(learned):
            page.md("finding", S.saturation(learned))
    fixed = "size" if kind == "data" else "data fraction"
    summary = T.fit_summary(fits).rename(columns={"fixed at": fixed})
    page.table("summary", "summary", summary[["arch", fixed, "points", "decades", "law", "exponent", "estimate",
                                              "AICc", "note"]].set_index("arch"))
    x = R.AXES[kind]
    points = T.fit_points(fits).rename(columns={x: LABELS[x]})
    for arch, s in fits.items():
        if not s.ok:
            page.md("fits", f"**{arch}**: no fit — {s.reason}.")
    if points.empty:
        page.md("fits", "No finished runs to plot yet.")
    else:
        fitted = {arch: s.fit for arch, s in fits.items() if s.ok}
        page.chart("fits", name, charts.scaling_fit(
            points, LABELS[x], "val_loss", fitted or None, sigma="sigma", color="arch", span="group",
            reference=_floor(table), title=f"validation loss vs {charts.axis_title(LABELS[x])}"))
    for arch, s in fits.items():
        page.md("laws", f"### {arch}")
        if s.comparison is None:
            page.md("laws", f"No fit: {s.reason}.")
            continue
        page.md("laws", f"{len(s.points)} points over {s.span_decades():.2f} decades, fixed "
                        f"{'size' if s.kind == 'data' else 'fraction'}: {s.at}. " + " ".join(s.notes))
        page.table("laws", f"comparison_{arch}", s.comparison.drop(columns=["rank", "error"]).set_index("law"))
        if s.ok:
            page.md("laws", f"Shown law: **{s.law}** (`{s.fit.formula}`), 95% CI ({s.fit.ci_method})"
                            + (f"; {s.fallback}." if s.fallback else "."))
            page.table("laws", f"parameters_{arch}", s.fit.parameters().drop(columns=["law"]).set_index("parameter"))
            if s.fit.note:
                page.md("laws", f"Note: {s.fit.note}.")
        else:
            page.md("laws", f"**{s.reason[0].upper() + s.reason[1:]}.**")
    forecast = F.forecast(fits)
    if len(forecast):
        page.table("forecast", "forecast", forecast.set_index(["arch", "decades beyond"]))
    page.table("terms", "terms", F.term_exponents(table, archs, kinds=(kind,)).set_index(["arch", "term"]))
    if kind == "data":
        from matscale.study.checks import budget_check

        budget = budget_check(table, archs)
        if budget["verdict"].notna().any():
            page.table("budget", "budget", T.budget_summary(budget[budget["verdict"].notna()]).set_index("arch"))
        else:
            page.md("budget", "No budget-sensitivity result: " + "; ".join(
                dict.fromkeys(f"{r.arch}: {r.reason}" for r in budget.itertuples())) + ".")
    return page


from matscale.study.fit_pages import architectures, compute_scaling, equivariance, joint_scaling  # noqa: E402

__all__ = ["Page", "configure", "physical_errors", "study", "training_dynamics", "data_scaling",
           "parameter_scaling", "compute_scaling", "joint_scaling", "architectures", "equivariance"]
