"""Helpers for the book's notebooks: offline chart rendering and figure files.

A notebook page starts with

    import matscale.book
    matscale.book.setup()

and then shows charts either as the last expression of a cell (plain altair display) or
with `matscale.book.show(chart, "name")`, which also saves `_build/figures/name.svg`.

The chart outputs draw with the Vega bundle that the book's Sphinx extension adds to each
page, so they render interactively in the built book (also from file://, with no network).
Everywhere else (JupyterLab, VS Code, nbconvert, GitHub) each chart output also carries a
static PNG (vl-convert), which those front ends show instead; for interactive charts in a
live Jupyter session use `alt.renderers.enable("default")` (it loads Vega from a CDN).
"""
from __future__ import annotations

import os
from typing import Iterable

from matscale.book import render
from matscale.book.figures import book_root, figures_dir, save

# altair refuses to embed more rows than this; our charts pass tables already reduced
# (per-validation metrics, binned histograms, sub-sampled parity points)
MAX_ROWS = 20_000

__all__ = ["setup", "show", "save", "figures_dir", "book_root", "MAX_ROWS"]


def setup(embed_options: dict | None = None, max_rows: int = MAX_ROWS, static: bool = True) -> None:
    """Make altair render through the offline `window.vegaEmbed` renderer.

    Call once in a notebook's first code cell. `embed_options` are merged into vega-embed's
    options (see `matscale.book.render.DEFAULT_EMBED_OPTIONS`); `static=False` leaves out the
    PNG fallback of each chart (smaller notebooks that show charts only in the book).
    """
    import altair as alt

    render.enable(embed_options, static=static)
    alt.data_transformers.enable("default", max_rows=max_rows)


def show(
    chart,
    name: str | None = None,
    formats: str | Iterable[str] = ("svg",),
    directory: str | os.PathLike | None = None,
) -> None:
    """Display `chart` in the notebook and, when `name` is given, save it as a figure file.

    Returns None so that a trailing `show(...)` does not display the chart a second time.
    """
    from IPython.display import display

    if name is not None:
        save(chart, name, formats=formats, directory=directory)
    display(chart)
