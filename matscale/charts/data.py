"""Dataset charts: histograms of raw values and of pre-binned statistics."""
from __future__ import annotations

from typing import Any, Sequence

import altair as alt
import numpy as np
import pandas as pd

from matscale.charts._base import _require, _scale
from matscale.errors import DataError

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
