"""Scaling charts: fitted laws with bands, compute frontiers, extrapolation checks, exponents, the study grid."""
from __future__ import annotations

from typing import Any, Mapping

import altair as alt
import numpy as np
import pandas as pd

from matscale.charts._base import RUN_COLUMNS, axis_title, _positive, _require, _run_column, _scale
from matscale.errors import DataError


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
    if not frames:  # no identified fit to draw: points only
        return []
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
    width: int = 460,
    height: int = 320,
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
    width: int = 520,
    height: int = 340,
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
    width: int = 460,
    height: int = 320,
    title: str | None = None,
    x_max: float | None = None,
) -> alt.LayerChart:
    """A law fitted to the smaller runs, extended to the held-out ones: does its band cover them?

    `points` has one row per point with a boolean `held_out` column: fitted points are drawn
    filled, held-out (measured) points as red diamonds. The fitted curve and its band (at
    `level`) span all points (and reach `x_max` when it lies beyond them), so the band at a
    held-out x is the prediction being tested; pass a prediction band (predict/band, e.g.
    matscale.study.extrapolate.PredictionBand) to test a new measurement, not the mean law.
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
    xs_all = data[x].to_numpy(dtype=float)
    if x_max is not None and np.isfinite(x_max) and x_max > 0:
        xs_all = np.append(xs_all, float(x_max))
    grid = _grid(xs_all, n_grid, True, 1.0)
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


def study_grid(grid: pd.DataFrame, width: int = 420, height: int = 300,
               title: str = "the study grid (finished runs)") -> alt.Chart:
    """Each (arch, size, frac) point of a study at its N and D (log-log), with seeds and loss in the
    tooltip. `grid`: arch, size, frac, params, n_train, seeds, val_loss (one row per point)."""
    _require(grid, ["arch", "size", "frac", "params", "n_train", "seeds", "val_loss"], "study_grid")
    return alt.Chart(grid).mark_point(filled=True, size=80, opacity=0.8).encode(
        x=alt.X("params:Q", scale=alt.Scale(type="log"), title="non-embedding parameters N"),
        y=alt.Y("n_train:Q", scale=alt.Scale(type="log"), title="training structures D"),
        color=alt.Color("arch:N", title="arch"), shape=alt.Shape("arch:N", title="arch"),
        tooltip=["arch", "size", "frac", "params", "n_train", "seeds", alt.Tooltip("val_loss", format=".4g")],
    ).properties(width=width, height=height, title=title)
