"""altair chart builders for the book: DataFrames (or arrays) in, altair charts out.

Every builder returns an altair top-level chart (`alt.Chart`, or `alt.LayerChart` when a
chart overlays data and a fit) whose `to_dict()` is a valid Vega-Lite spec with the data
inlined, so it renders offline through `matscale.book` and saves to SVG/PNG with
`matscale.book.save`. Nothing is hard-coded: every value comes from the arguments.

    loss_curves(metrics, x="epoch")          total loss and its parts, train and val, vs x
    parity(true, pred, "forces", "eV/Å")     predicted vs true with y = x and the MAE
    histogram(values, "energy", "eV/atom")   histogram of raw values (binned here)
    stats_histograms(hist_df)                pre-binned histograms per quantity/subset/split
    scaling_fit(points, "N", "val_loss", fit)   log-log points, error bars, fitted law, band
    frontier(curves, front, fit)             all runs' loss vs compute, Pareto front, its fit
    extrapolation(points, x, y, fit)         fit on the smaller runs, predicted band vs the held-out run
    exponents(table)                         fitted exponents with confidence intervals, per architecture
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from matscale.errors import DataError

SPLITS = ("train", "val")
RUN_COLUMNS = ("run_id", "run")  # recognised names of a run-identifier column
_SPLIT_COL = re.compile(r"^(train|val)_(.+)$")
_UNITS = {"eV_atom": "eV/atom", "eV_A3": "eV/Å³", "eV_A": "eV/Å", "GPa": "GPa"}
# axis titles with units for the columns the book plots (others: the name with spaces)
AXIS_TITLES = {"epoch": "epoch", "step": "optimiser steps", "samples_seen": "training structures seen",
               "atoms_seen": "training atoms seen", "flops": "training compute C (FLOPs)",
               "wall_s": "wall time (s)", "params": "non-embedding parameters N",
               "params_total": "parameters (total)", "n_train": "training structures D",
               "val_loss": "validation loss (weighted sum, dimensionless)",
               "train_loss": "training loss (weighted sum, dimensionless)",
               "best_val_loss": "best validation loss (dimensionless)"}
LEGEND_COLUMNS = 3  # entries per row of a legend below a chart (long run labels stay within the page)


def axis_title(column: str) -> str:
    """'flops' -> 'training compute C (FLOPs)'; unknown names: underscores become spaces."""
    return AXIS_TITLES.get(column, column.replace("_", " "))


# -- helpers ----------------------------------------------------------------------------------
def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} lacks column(s) {missing}; it has {list(df.columns)}"
        )


def _label(name: str) -> str:
    """'loss_stress_iso' -> 'stress iso'; 'force_l2mae_eV_A' -> 'force l2mae (eV/Å)'."""
    if name == "loss":
        return "total"
    name = name[len("loss_"):] if name.startswith("loss_") else name
    for suffix, unit in _UNITS.items():
        if name.endswith("_" + suffix):
            return f"{name[: -len(suffix) - 1].replace('_', ' ')} ({unit})"
    return name.replace("_", " ")


def _run_column(df: pd.DataFrame, run: str | None) -> str | None:
    if run is not None:
        _require(df, [run], "the table")
        return run
    return next((c for c in RUN_COLUMNS if c in df.columns), None)


def _positive(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Rows whose `columns` are finite and > 0 (what a log scale can show)."""
    keep = np.ones(len(df), dtype=bool)
    for c in columns:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        keep &= np.isfinite(v) & (v > 0)
    return df[keep]


def _scale(log: bool) -> alt.Scale:
    return alt.Scale(type="log") if log else alt.Scale(zero=False)


# -- training curves --------------------------------------------------------------------------
def metric_names(metrics: pd.DataFrame, components: bool = True) -> list[str]:
    """The metric names found as `train_<name>`/`val_<name>` columns, total loss first.

    With the training loop's columns (`train_loss`, `train_loss_energy`, ...) the components
    are the `loss_*` names; without any `loss_*` column every other `train_*`/`val_*` name
    (e.g. `train_energy`) counts as a component.
    """
    names = []
    for col in metrics.columns:
        m = _SPLIT_COL.match(str(col))
        if m and m.group(2) not in names:
            names.append(m.group(2))
    if "loss" not in names:
        raise DataError(
            "the metrics table has no train_loss or val_loss column; "
            f"columns found: {list(metrics.columns)}"
        )
    if not components:
        return ["loss"]
    loss_parts = [n for n in names if n.startswith("loss_")]
    others = [n for n in names if n != "loss" and not n.startswith("loss_")]
    return ["loss", *(loss_parts if loss_parts else others)]


def long_metrics(
    metrics: pd.DataFrame, x: str, names: Sequence[str], run: str | None = None
) -> pd.DataFrame:
    """Melt `train_<name>`/`val_<name>` columns into rows (x, [run], split, metric, value)."""
    id_cols = [x] + ([run] if run else [])
    frames = []
    for name in names:
        for split in SPLITS:
            col = f"{split}_{name}"
            if col in metrics.columns:
                part = metrics[id_cols].copy()
                part["split"] = split
                part["metric"] = _label(name)
                part["value"] = pd.to_numeric(metrics[col], errors="coerce")
                frames.append(part)
    out = pd.concat(frames, ignore_index=True)
    return out[np.isfinite(out["value"].to_numpy(dtype=float))]


def loss_curves(
    metrics: pd.DataFrame,
    x: str = "epoch",
    components: bool = True,
    log_y: bool = True,
    log_x: bool | None = None,
    run: str | None = None,
    metrics_to_plot: Sequence[str] | None = None,
    columns: int = 3,
    width: int = 180,
    height: int = 140,
    title: str | None = None,
) -> alt.Chart:
    """Total loss (and, with `components`, each part) for train and val against `x`.

    `metrics` holds one row per validation (a run's metrics.csv, or several runs stacked
    with a `run_id`/`run` column, which then colours the lines while the split sets the
    dash). `x` is any column: epoch, step, samples_seen, flops, wall_s. `log_x` defaults to
    True for flops. `metrics_to_plot` picks names explicitly (e.g. the physical MAEs
    `["energy_mae_eV_atom", "force_l2mae_eV_A"]`). One panel per metric, own y scale.
    """
    _require(metrics, [x], "the metrics table")
    run = _run_column(metrics, run)
    names = list(metrics_to_plot) if metrics_to_plot else metric_names(metrics, components)
    absent = [n for n in names if f"train_{n}" not in metrics and f"val_{n}" not in metrics]
    if absent:
        raise DataError(f"the metrics table has no train_/val_ columns for {absent}")
    data = long_metrics(metrics, x, names, run)
    log_x = (x == "flops") if log_x is None else log_x
    data = _positive(data, ["value"] * log_y + [x] * log_x)
    if data.empty:
        raise DataError(f"no finite {'positive ' if log_y or log_x else ''}values to plot against {x!r}")
    order = [_label(n) for n in names]
    enc: dict[str, Any] = {
        "x": alt.X(f"{x}:Q", title=axis_title(x), scale=_scale(log_x)),
        "y": alt.Y("value:Q", title=None, scale=_scale(log_y)),
        "facet": alt.Facet("metric:N", sort=order, columns=columns, title=None),
        "tooltip": [alt.Tooltip(f"{x}:Q"), "split:N", "metric:N", alt.Tooltip("value:Q", format=".4g")],
    }
    legend = alt.Legend(orient="bottom", columns=LEGEND_COLUMNS)  # keeps the panels within the page width
    if run:
        enc["color"] = alt.Color(f"{run}:N", title=run, legend=legend)
        enc["strokeDash"] = alt.StrokeDash("split:N", sort=list(SPLITS), title="split", legend=legend)
        enc["tooltip"].insert(0, f"{run}:N")
    else:
        enc["color"] = alt.Color("split:N", sort=list(SPLITS), title="split", legend=legend)
    chart = (
        alt.Chart(data, title=title or f"loss vs {x.replace('_', ' ')}")
        .mark_line(point=True)
        .encode(**enc)
        .properties(width=width, height=height)
        .resolve_scale(y="independent")
    )
    return chart


# -- parity -----------------------------------------------------------------------------------
def parity(
    true: Any,
    pred: Any,
    quantity: str,
    unit: str,
    max_points: int = 5000,
    seed: int = 0,
    size: int = 300,
    title: str | None = None,
) -> alt.LayerChart:
    """Predicted against true values with the y = x line; MAE (over all points) in the title.

    `true`/`pred` are array-likes of equal size (any shape: force arrays are flattened to
    components). At most `max_points` points, drawn at random with `seed`, are plotted.
    """
    t = np.asarray(true, dtype=float).ravel()
    p = np.asarray(pred, dtype=float).ravel()
    if t.size != p.size:
        raise DataError(f"parity: true has {t.size} values but pred has {p.size}")
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    if t.size == 0:
        raise DataError(f"parity: no finite (true, pred) pairs for {quantity}")
    mae = float(np.mean(np.abs(p - t)))
    n = t.size
    if n > max_points:
        pick = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
        t, p = t[pick], p[pick]
    lo = float(min(t.min(), p.min()))
    hi = float(max(t.max(), p.max()))
    pad = 0.02 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.05
    domain = [lo - pad, hi + pad]
    points = pd.DataFrame({"true": t, "pred": p})
    x = alt.X("true:Q", title=f"true {quantity} ({unit})", scale=alt.Scale(domain=domain))
    y = alt.Y("pred:Q", title=f"predicted {quantity} ({unit})", scale=alt.Scale(domain=domain))
    scatter = alt.Chart(points).mark_circle(size=12, opacity=0.5).encode(x=x, y=y)
    diagonal = (
        alt.Chart(pd.DataFrame({"true": domain, "pred": domain}))
        .mark_line(color="black", strokeDash=[4, 4])
        .encode(x=x, y=y)
    )
    head = title or quantity
    shown = f", {len(points)} shown" if len(points) < n else ""
    return alt.layer(scatter, diagonal).properties(
        width=size,
        height=size,
        title=alt.TitleParams(head, subtitle=f"MAE = {mae:.4g} {unit} (n = {n}{shown})"),
    )


# -- histograms -------------------------------------------------------------------------------
HIST_COLUMNS = ("bin_left", "bin_right", "count")


def histogram_table(
    values: Any, bins: int | Sequence[float] = 50, group: Any = None, range: tuple | None = None
) -> pd.DataFrame:
    """Bin raw values with shared edges: rows (group, bin_left, bin_right, count)."""
    v = np.asarray(values, dtype=float).ravel()
    g = np.zeros(v.size, dtype=object) if group is None else np.asarray(group, dtype=object).ravel()
    if g.size != v.size:
        raise DataError(f"histogram: {v.size} values but {g.size} group labels")
    ok = np.isfinite(v)
    v, g = v[ok], g[ok]
    if v.size == 0:
        raise DataError("histogram: no finite values")
    edges = np.histogram_bin_edges(v, bins=bins, range=range)
    rows = []
    for label in pd.unique(g):
        counts, _ = np.histogram(v[g == label], bins=edges)
        rows.append(pd.DataFrame({"group": label, "bin_left": edges[:-1], "bin_right": edges[1:], "count": counts}))
    return pd.concat(rows, ignore_index=True)


def histogram(
    values: Any,
    quantity: str,
    unit: str,
    bins: int | Sequence[float] = 50,
    group: Any = None,
    group_title: str = "group",
    density: bool = False,
    log_y: bool = False,
    width: int = 320,
    height: int = 180,
) -> alt.Chart:
    """Histogram of raw `values`, binned here (so only the bins are embedded in the page).

    With `group` (one label per value), each group is drawn as a coloured step outline on
    shared bin edges; `density` divides counts by group size and bin width.
    """
    table = histogram_table(values, bins=bins, group=group)
    table = table.rename(columns={"group": group_title})
    return _hist_chart(
        table, x_title=f"{quantity} ({unit})", color=group_title if group is not None else None,
        dash=None, facet=None, density=density, log_y=log_y, width=width, height=height,
        title=quantity,
    )


def _with_height(table: pd.DataFrame, keys: list[str], density: bool) -> pd.DataFrame:
    table = table.copy()
    count = pd.to_numeric(table["count"], errors="coerce").astype(float)
    if density:
        width = (table["bin_right"] - table["bin_left"]).astype(float)
        totals = table.assign(_c=count).groupby(keys, dropna=False)["_c"].transform("sum") if keys else count.sum()
        table["height"] = count / (totals * width)
    else:
        table["height"] = count
    return table


def _hist_chart(table, x_title, color, dash, facet, density, log_y, width, height, title, columns=2):
    keys = [k for k in (color, dash, facet) if k]
    table = _with_height(table, keys, density)
    if log_y:
        table = table[table["height"] > 0]
    y_title = "density" if density else "count"
    enc: dict[str, Any] = {
        "x": alt.X("bin_left:Q", title=x_title, bin="binned"),
        "x2": alt.X2("bin_right:Q"),
        "y": alt.Y("height:Q", title=y_title, scale=_scale(log_y) if log_y else alt.Scale()),
        "tooltip": [alt.Tooltip("bin_left:Q", format=".4g"), alt.Tooltip("bin_right:Q", format=".4g"),
                    alt.Tooltip("count:Q")] + [f"{k}:N" for k in keys],
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=color)
    if dash:
        enc["strokeDash"] = alt.StrokeDash(f"{dash}:N", title=dash)
    if facet:
        enc["facet"] = alt.Facet(f"{facet}:N", columns=columns, title=None)
    # bars when there is one series, semi-transparent bars per colour otherwise
    mark = alt.Chart(table, **({"title": title} if title else {})).mark_bar(opacity=0.45 if color else 0.9, binSpacing=0)
    chart = mark.encode(**enc).properties(width=width, height=height)
    if facet:
        chart = chart.resolve_scale(x="independent", y="independent")
    return chart


def stats_histograms(
    hist_df: pd.DataFrame,
    quantity: str | None = None,
    color: str | None = "subset",
    facet: str | None = None,
    split: str | None = "split",
    density: bool = True,
    log_y: bool = False,
    columns: int = 2,
    width: int = 280,
    height: int = 160,
) -> alt.Chart:
    """Pre-binned histograms (one row per bin) drawn per quantity, coloured by subset.

    `hist_df` needs `bin_left`, `bin_right`, `count` and a `quantity` column (e.g.
    "energy per atom (eV/atom)"); optional `subset` and `split` columns become colour and
    facet. Pass `quantity` to draw one quantity only. With several quantities and no
    `facet`, each quantity gets its own panel (independent axes); otherwise the splits do.
    """
    _require(hist_df, list(HIST_COLUMNS), "the histogram table")
    table = hist_df
    if quantity is not None:
        _require(table, ["quantity"], "the histogram table")
        table = table[table["quantity"] == quantity]
        if table.empty:
            have = sorted(hist_df["quantity"].unique())
            raise DataError(f"no histogram rows for quantity {quantity!r}; available: {have}")
    color = color if color and color in table.columns else None
    split = split if split and split in table.columns and table[split].nunique() > 1 else None
    if facet is None:
        if "quantity" in table.columns and table["quantity"].nunique() > 1:
            facet = "quantity"
        elif split:
            facet, split = split, None
    elif facet not in table.columns:
        raise DataError(f"facet column {facet!r} not in the histogram table {list(table.columns)}")
    if facet == "quantity" and split:
        # quantity panels and splits both needed: combine them into the facet label
        table = table.assign(panel=table["quantity"].astype(str) + " — " + table[split].astype(str))
        facet, split = "panel", None
    if quantity is not None:
        x_title = quantity
    elif "quantity" in table.columns and table["quantity"].nunique() == 1:
        x_title = str(table["quantity"].iloc[0])
    else:
        x_title = "value"
    return _hist_chart(
        table, x_title=x_title, color=color, dash=split, facet=facet, density=density,
        log_y=log_y, width=width, height=height, title=quantity, columns=columns,
    )


# -- scaling laws -----------------------------------------------------------------------------
def _grid(x: np.ndarray, n: int, log: bool, extend: float) -> np.ndarray:
    lo, hi = float(np.min(x)), float(np.max(x))
    if log:
        return np.geomspace(lo / extend, hi * extend, n)
    pad = (hi - lo) * (extend - 1.0)
    return np.linspace(lo - pad, hi + pad, n)


def fit_curve(fit_result, grid: np.ndarray, band: bool = True, level: float = 0.95) -> pd.DataFrame:
    """Evaluate a fit on `grid`: columns x, fit and (with `band`) lower, upper.

    `fit_result` must offer `predict(x) -> array`; for the band, `band(x, level=...) ->
    (lower, upper)` (the fitting engine's FitResult does both).
    """
    if not hasattr(fit_result, "predict"):
        raise DataError(f"a fit result needs a predict(x) method; got {type(fit_result).__name__}")
    out = pd.DataFrame({"x": grid, "fit": np.asarray(fit_result.predict(grid), dtype=float)})
    if band:
        if not hasattr(fit_result, "band"):
            raise DataError(f"band=True needs a fit result with band(x, level); {type(fit_result).__name__} has none")
        lower, upper = fit_result.band(grid, level=level)
        out["lower"] = np.asarray(lower, dtype=float)
        out["upper"] = np.asarray(upper, dtype=float)
    return out


def _fit_layers(fits: Mapping[Any, Any], grid, x_enc_title, y_title, color, log, band, level, group_title,
                line_color="black"):
    frames = []
    for label, fit in fits.items():
        curve = fit_curve(fit, grid[label] if isinstance(grid, Mapping) else grid, band=band, level=level)
        curve[group_title] = label
        frames.append(curve)
    curves = pd.concat(frames, ignore_index=True)
    keep = ["x", "fit"] + (["upper"] if band else [])
    if log:
        curves = _positive(curves, keep)
        if band:  # a log axis cannot show a lower bound <= 0: clip it at fit / 10
            curves["lower"] = np.where(curves["lower"] > 0, curves["lower"], curves["fit"] / 10)
    else:
        curves = curves[np.isfinite(curves[keep + (["lower"] if band else [])]).all(axis=1)]
    x = alt.X("x:Q", title=x_enc_title, scale=_scale(log))
    style = {"color": alt.Color(f"{group_title}:N", title=color)} if color else {}
    line = alt.Chart(curves).mark_line(**({} if color else {"color": line_color})).encode(
        x=x, y=alt.Y("fit:Q", title=y_title, scale=_scale(log)), **style
    )
    layers = [line]
    if band:
        area = alt.Chart(curves).mark_area(opacity=0.2, **({} if color else {"color": "gray"})).encode(
            x=x, y=alt.Y("lower:Q", title=y_title, scale=_scale(log)), y2="upper:Q", **style
        )
        layers.insert(0, area)
    return layers


def scaling_fit(
    points: pd.DataFrame,
    x: str,
    y: str,
    fit_result=None,
    sigma: str | None = None,
    band: bool = True,
    level: float = 0.95,
    color: str | None = None,
    log: bool = True,
    extend: float = 1.0,
    n_grid: int = 200,
    width: int = 360,
    height: int = 260,
    title: str | None = None,
    span: str = "all",
    reference: Mapping[str, float] | None = None,
) -> alt.LayerChart:
    """Measured points (with ±`sigma` error bars), the fitted law and its uncertainty band.

    `reference` draws labelled dashed horizontal lines at fixed y values, e.g. the linear
    baseline's loss {"linear baseline": 42.4}: the level a model must get below.

    `fit_result` is one fit (with `predict`/`band`) or, when `color` names a grouping
    column, a mapping {group value: fit}; None draws the points only. The curve spans the
    data's x range, widened by the factor `extend` on a log axis (extrapolation); with
    `span="group"` each group's curve spans only that group's points (no silent extrapolation
    of one group's law over another group's range).
    """
    if span not in ("all", "group"):
        raise DataError(f"span must be 'all' or 'group', not {span!r}")
    need = [x, y] + ([sigma] if sigma else []) + ([color] if color else [])
    _require(points, need, "the points table")
    data = points[need].copy()
    data = _positive(data, [x, y]) if log else data.dropna(subset=[x, y])
    if data.empty:
        raise DataError(f"no {'positive ' if log else ''}finite ({x}, {y}) points to plot")
    xs = alt.X(f"{x}:Q", title=axis_title(x), scale=_scale(log))
    ys = alt.Y(f"{y}:Q", title=axis_title(y), scale=_scale(log))
    style = {"color": alt.Color(f"{color}:N", title=color)} if color else {}
    layers: list[alt.Chart] = []
    if sigma:
        s = pd.to_numeric(data[sigma], errors="coerce").fillna(0.0).abs()
        data["y_lo"] = data[y] - s
        data["y_hi"] = data[y] + s
        if log:  # a log axis cannot show y - sigma <= 0: clip the bar at y / 10
            data["y_lo"] = np.where(data["y_lo"] > 0, data["y_lo"], data[y] / 10)
        layers.append(
            alt.Chart(data).mark_rule().encode(x=xs, y=alt.Y("y_lo:Q", title=axis_title(y), scale=_scale(log)),
                                               y2="y_hi:Q", **style)
        )
    tips = [alt.Tooltip(f"{c}:N") if c == color else alt.Tooltip(f"{c}:Q", format=".4g") for c in need]
    layers.append(alt.Chart(data).mark_point(filled=True, size=50).encode(x=xs, y=ys, tooltip=tips, **style))
    if fit_result is not None:
        if color:
            if not isinstance(fit_result, Mapping):
                raise DataError("with color=..., pass fit_result as a mapping {group value: fit}")
            fits = dict(fit_result)
        else:
            fits = {"fit": fit_result}
        grid = _grid(data[x].to_numpy(dtype=float), n_grid, log, extend)
        if span == "group" and color:
            grid = {label: _grid(data.loc[data[color] == label, x].to_numpy(dtype=float), n_grid, log, extend)
                    if (data[color] == label).any() else grid for label in fits}
        layers = _fit_layers(fits, grid, axis_title(x), axis_title(y), color, log, band, level,
                             color or "curve") + layers
    if reference:
        refs = pd.DataFrame({"reference": list(reference), y: [float(v) for v in reference.values()]})
        refs = refs[np.isfinite(refs[y]) & ((refs[y] > 0) if log else True)]
        if len(refs):
            ry = alt.Y(f"{y}:Q", scale=_scale(log))
            layers.append(alt.Chart(refs).mark_rule(color="gray", strokeDash=[5, 4]).encode(
                y=ry, tooltip=[alt.Tooltip("reference:N"), alt.Tooltip(f"{y}:Q", format=".4g")]))
            layers.append(alt.Chart(refs).mark_text(align="left", baseline="bottom", dx=4, dy=-2, color="gray",
                                                    fontSize=10).encode(y=ry, x=alt.value(0), text="reference:N"))
    return alt.layer(*layers).properties(width=width, height=height, title=title or f"{y} vs {x}")


def frontier(
    curves_df: pd.DataFrame,
    frontier_df: pd.DataFrame,
    fit_result=None,
    x: str = "flops",
    y: str = "val_loss",
    run: str | None = None,
    color: str | None = None,
    band: bool = True,
    level: float = 0.95,
    extend: float = 1.0,
    n_grid: int = 200,
    width: int = 420,
    height: int = 300,
    title: str | None = None,
) -> alt.LayerChart:
    """Every run's `y` against cumulative compute `x`, the Pareto frontier and its fit.

    `curves_df` has one row per validation of every run (a run-id column, e.g. from
    `matscale.runs.all_metrics`); `color` (e.g. "arch") colours the runs, grey otherwise.
    `frontier_df` holds the frontier points (columns `x`, `y`), drawn as black dots joined
    by a step line; `fit_result` (predict/band) adds the fitted L(C) and its band.
    """
    run = _run_column(curves_df, run)
    if run is None:
        raise DataError(f"the curves table needs a run column ({' or '.join(RUN_COLUMNS)}) to draw one line per run")
    need = [x, y, run] + ([color] if color and color != run else [])
    _require(curves_df, need, "the curves table")
    _require(frontier_df, [x, y], "the frontier table")
    curves = _positive(curves_df[need].copy(), [x, y])
    front = _positive(frontier_df[[x, y]].copy(), [x, y]).sort_values(x)
    if curves.empty:
        raise DataError(f"no positive ({x}, {y}) rows in the curves table")
    xs = alt.X(f"{x}:Q", title=axis_title(x), scale=_scale(True))
    ys = alt.Y(f"{y}:Q", title=axis_title(y), scale=_scale(True))
    run_style = {"color": alt.Color(f"{color}:N", title=color)} if color else {}
    lines = (
        alt.Chart(curves)
        .mark_line(opacity=0.5, strokeWidth=1, **({} if color else {"color": "lightgray"}))
        .encode(x=xs, y=ys, detail=f"{run}:N", tooltip=[f"{run}:N", alt.Tooltip(f"{x}:Q", format=".3g"),
                                                            alt.Tooltip(f"{y}:Q", format=".4g")], **run_style)
    )
    layers = [lines]
    if fit_result is not None:
        allx = np.concatenate([curves[x].to_numpy(dtype=float), front[x].to_numpy(dtype=float)])
        grid = _grid(allx if front.empty else front[x].to_numpy(dtype=float), n_grid, True, extend)
        layers += _fit_layers({"frontier fit": fit_result}, grid, axis_title(x), axis_title(y),
                              None, True, band, level, "curve", line_color="firebrick")
    if not front.empty:
        fx = alt.X(f"{x}:Q", title=axis_title(x), scale=_scale(True))
        fy = alt.Y(f"{y}:Q", title=axis_title(y), scale=_scale(True))
        layers.append(alt.Chart(front).mark_line(color="black", interpolate="step-after", strokeWidth=1.5)
                      .encode(x=fx, y=fy))
        layers.append(alt.Chart(front).mark_point(color="black", filled=True, size=40)
                      .encode(x=fx, y=fy, tooltip=[alt.Tooltip(f"{x}:Q", format=".3g"),
                                                   alt.Tooltip(f"{y}:Q", format=".4g")]))
    return alt.layer(*layers).properties(width=width, height=height, title=title or f"{y} vs {x}: compute frontier")


# -- extrapolation check and exponent comparison ------------------------------------------------
def extrapolation(
    points: pd.DataFrame,
    x: str,
    y: str,
    fit_result,
    held_out: str = "held_out",
    sigma: str | None = None,
    level: float = 0.95,
    n_grid: int = 200,
    width: int = 360,
    height: int = 260,
    title: str | None = None,
) -> alt.LayerChart:
    """A law fitted to the smaller runs, extended to the held-out ones: does its band cover them?

    `points` has one row per point with a boolean `held_out` column: fitted points are drawn
    filled, held-out (measured) points as red diamonds. The fitted curve and its band (at
    `level`) span all points, so the band at a held-out x is the prediction being tested.
    """
    need = [x, y, held_out] + ([sigma] if sigma else [])
    _require(points, need, "the points table")
    if not hasattr(fit_result, "predict") or not hasattr(fit_result, "band"):
        raise DataError(f"an extrapolation chart needs a fit with predict and band; got {type(fit_result).__name__}")
    data = _positive(points[need].copy(), [x, y])
    if data.empty:
        raise DataError(f"no positive finite ({x}, {y}) points to plot")
    data["role"] = np.where(data[held_out].astype(bool), "held out (measured)", "fitted")
    xs = alt.X(f"{x}:Q", title=axis_title(x), scale=_scale(True))
    ys = alt.Y(f"{y}:Q", title=axis_title(y), scale=_scale(True))
    grid = _grid(data[x].to_numpy(dtype=float), n_grid, True, 1.0)
    layers = _fit_layers({"fit": fit_result}, grid, axis_title(x), axis_title(y), None, True, True,
                         level, "curve")
    if sigma:
        s = pd.to_numeric(data[sigma], errors="coerce").fillna(0.0).abs()
        bars = data.assign(y_lo=np.where(data[y] - s > 0, data[y] - s, data[y] / 10), y_hi=data[y] + s)
        layers.append(alt.Chart(bars).mark_rule().encode(
            x=xs, y=alt.Y("y_lo:Q", title=axis_title(y), scale=_scale(True)), y2="y_hi:Q"))
    colors = alt.Scale(domain=["fitted", "held out (measured)"], range=["black", "firebrick"])
    shapes = alt.Scale(domain=["fitted", "held out (measured)"], range=["circle", "diamond"])
    layers.append(alt.Chart(data).mark_point(filled=True, size=70).encode(
        x=xs, y=ys, color=alt.Color("role:N", scale=colors, title=None, legend=alt.Legend(orient="bottom")),
        shape=alt.Shape("role:N", scale=shapes, title=None),
        tooltip=[alt.Tooltip(f"{x}:Q", format=".4g"), alt.Tooltip(f"{y}:Q", format=".4g"), "role:N"]))
    return alt.layer(*layers).properties(width=width, height=height,
                                         title=title or f"{y} vs {x}: extrapolation to held-out runs")


def exponents(
    table: pd.DataFrame,
    value: str = "value",
    low: str = "ci_low",
    high: str = "ci_high",
    group: str = "arch",
    panel: str = "exponent",
    columns: int = 3,
    width: int = 200,
    height: int | None = None,
    title: str | None = None,
) -> alt.Chart:
    """Fitted exponents as dots with their confidence intervals, one panel per exponent.

    `table` has one row per (group, panel) with the estimate and its interval (a missing
    interval draws the dot alone). Each panel has its own x scale.
    """
    _require(table, [value, low, high, group, panel], "the exponent table")
    data = table[[group, panel, value, low, high]].copy()
    data = data[np.isfinite(pd.to_numeric(data[value], errors="coerce").to_numpy(dtype=float))]
    if data.empty:
        raise DataError("no finite exponents to plot")
    groups = list(pd.unique(data[group]))
    height = height or max(60, 28 * len(groups))
    y = alt.Y(f"{group}:N", title=None, sort=groups)
    x = alt.X(f"{value}:Q", title="exponent", scale=alt.Scale(zero=False))
    rule = alt.Chart().mark_rule(strokeWidth=2).encode(
        x=alt.X(f"{low}:Q", title="exponent", scale=alt.Scale(zero=False)), x2=f"{high}:Q", y=y,
        color=alt.Color(f"{group}:N", title=group, legend=None))
    dot = alt.Chart().mark_point(filled=True, size=70).encode(
        x=x, y=y, color=alt.Color(f"{group}:N", title=group, legend=None),
        tooltip=[f"{group}:N", f"{panel}:N", alt.Tooltip(f"{value}:Q", format=".3g"),
                 alt.Tooltip(f"{low}:Q", format=".3g"), alt.Tooltip(f"{high}:Q", format=".3g")])
    layered = alt.layer(rule, dot, data=data).properties(width=width, height=height)
    return layered.facet(facet=alt.Facet(f"{panel}:N", title=None), columns=columns,
                         title=title or "fitted exponents (95% CI)").resolve_scale(x="independent")
