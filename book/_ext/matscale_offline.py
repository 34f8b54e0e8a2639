"""Sphinx extension: serve the book's JavaScript locally so pages render with no network.

Registered in `_config.yml` under `sphinx: local_extensions`. It

* writes the Vega bundle (`matscale-vega.js`, from vl-convert) and a MathJax 3 copy into
  `<doctrees>/matscale_offline/` (kept between builds; the bundle is regenerated only when
  vl-convert or altair change) and adds that folder to `html_static_path`;
* adds `matscale-vega.js` (deferred) to exactly the pages that contain a chart drawn by
  `matscale.book.render` — charts wait for its `matscale:vega-ready` event;
* points Sphinx's MathJax at the local `tex-svg.js` instead of the CDN default;
* drops the static PNG that each chart output carries for other front ends from the page
  (the book draws the interactive chart) and adds `matscale-book.css`: a wide content
  column, so tables and chart legends are not clipped.

The asset code lives in `matscale.book.assets`, where it is unit-tested.
"""
from __future__ import annotations

from pathlib import Path

from matscale.book.assets import MATHJAX_JS, VEGA_JS, write_static
from matscale.book.render import CHART_CLASS, strip_static


BOOK_CSS = "matscale-book.css"
_OWN_STATIC = Path(__file__).resolve().parent / "static"  # matscale-book.css


def _static_dir(app) -> Path:
    return Path(app.doctreedir) / "matscale_offline"


def _config_inited(app, config) -> None:
    # Sphinx checks that static folders exist right after this event; the files follow
    # in `builder-inited`, only for HTML builds
    _static_dir(app).mkdir(parents=True, exist_ok=True)
    config.html_static_path = [*config.html_static_path, str(_static_dir(app)), str(_OWN_STATIC)]
    config.mathjax_path = MATHJAX_JS


def _builder_inited(app) -> None:
    if app.builder.format == "html":
        write_static(_static_dir(app))


def _page_context(app, pagename, templatename, context, doctree) -> None:
    if app.builder.format == "html" and CHART_CLASS in context.get("body", ""):
        context["body"] = strip_static(context["body"])
        app.builder.add_js_file(VEGA_JS, loading_method="defer")


def setup(app):
    app.connect("config-inited", _config_inited)
    app.add_css_file(BOOK_CSS)
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", _page_context)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
