"""Training charts: loss curves (total and parts, train and val) and parity plots."""
from __future__ import annotations

from typing import Any, Sequence

import altair as alt
import numpy as np
import pandas as pd

from matscale.charts._base import (LEGEND_COLUMNS, LOSS_UNITS, SPLITS, _SPLIT_COL, _label, _positive, _require, _run_column,
                                   _scale, axis_title)
from matscale.errors import DataError


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
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> alt.Chart:
    """Total loss (and, with `components`, each part) for train and val against `x`.

    `metrics` holds one row per validation (a run's metrics.csv, or several runs stacked
    with a `run_id`/`run` column, which then colours the lines while the split sets the
    dash). `x` is any column: epoch, step, samples_seen, flops, wall_s. `log_x` defaults to
    True for flops. `metrics_to_plot` picks names explicitly (e.g. the physical MAEs
    `["energy_mae_eV_atom", "force_l2mae_eV_A"]`). One panel per metric, own y scale;
    panels are 240 x 170 px (a single one: 460 x 300) unless `width` / `height` say otherwise.
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
    width = width or (460 if len(names) == 1 else 240)
    height = height or (300 if len(names) == 1 else 170)
    enc: dict[str, Any] = {
        "x": alt.X(f"{x}:Q", title=axis_title(x), scale=_scale(log_x)),
        "y": alt.Y("value:Q", title=None if metrics_to_plot else LOSS_UNITS, scale=_scale(log_y)),
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
