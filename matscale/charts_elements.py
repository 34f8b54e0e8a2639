"""Periodic-table heat map of a dataset's element coverage (altair, data inlined, offline).

    periodic_table(counts, value="atoms", facet="dataset")   one table per dataset, side by side

`counts` is `matscale.data.elements.element_counts` output (columns element, Z and the value
column), optionally with a `dataset` column. Every element up to Z = 103 is drawn: absent ones
as grey cells, present ones coloured on a log scale of the value, with the symbol on top and a
tooltip giving structures and atoms. The f-block rows sit below the main table.
"""
from __future__ import annotations

import altair as alt
import pandas as pd

from matscale.errors import DataError

MAX_Z = 103


def _cells(counts: pd.DataFrame, value: str) -> pd.DataFrame:
    from ase.data import chemical_symbols

    from matscale.data.elements import table_position

    per = counts.groupby("Z", as_index=False).agg({c: "sum" for c in ("structures", "atoms") if c in counts})
    rows = []
    for z in range(1, MAX_Z + 1):
        group, row = table_position(z)
        rows.append({"Z": z, "element": chemical_symbols[z], "group": group, "row": row})
    cells = pd.DataFrame(rows).merge(per, on="Z", how="left")
    for c in ("structures", "atoms"):
        if c in cells:
            cells[c] = cells[c].fillna(0).astype(int)
    cells["present"] = cells[value] > 0
    return cells


def periodic_table(counts: pd.DataFrame, value: str = "atoms", facet: str | None = "dataset",
                   cell: int = 22, title: str | None = None) -> alt.TopLevelMixin:
    """Heat map of `value` ('atoms' or 'structures') per element; one table per `facet` value."""
    if not isinstance(counts, pd.DataFrame):
        raise DataError(f"counts must be a pandas DataFrame, got {type(counts).__name__}")
    missing = [c for c in ("Z", value) if c not in counts.columns]
    if missing:
        raise DataError(f"element counts lack column(s) {', '.join(missing)}; pass element_counts() output")
    groups = [(None, counts)] if facet is None or facet not in counts else list(counts.groupby(facet, sort=False))
    charts = []
    for name, part in groups:
        cells = _cells(part, value)
        n_present = int(cells["present"].sum())
        x = alt.X("group:O", axis=None, scale=alt.Scale(domain=list(range(1, 19))))
        y = alt.Y("row:O", axis=None, scale=alt.Scale(domain=list(range(1, 11))))
        base = alt.Chart(cells).encode(x=x, y=y)
        tooltip = [alt.Tooltip("element:N"), alt.Tooltip("Z:Q")] + [
            alt.Tooltip(f"{c}:Q", format=",") for c in ("structures", "atoms") if c in cells]
        absent = base.transform_filter("!datum.present").mark_rect(color="#eeeeee", stroke="white")
        present = base.transform_filter("datum.present").mark_rect(stroke="white").encode(
            color=alt.Color(f"{value}:Q", scale=alt.Scale(type="log", scheme="yellowgreenblue"),
                            legend=alt.Legend(title=f"{value} (log)", orient="bottom", format="~s", tickCount=4)),
            tooltip=tooltip)
        text = base.mark_text(fontSize=8).encode(
            text="element:N",
            color=alt.condition("datum.present", alt.value("black"), alt.value("#999999")),
            tooltip=tooltip)
        label = f"{name}: {n_present} elements" if name is not None else (title or f"{n_present} elements")
        charts.append(alt.layer(absent, present, text).properties(
            width=18 * cell, height=10 * cell, title=label))
    out = alt.hconcat(*charts).resolve_scale(color="independent") if len(charts) > 1 else charts[0]
    return out.properties(title=title) if title and len(charts) > 1 else out
