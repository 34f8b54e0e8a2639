"""An altair renderer whose HTML needs no network: it calls the page's `window.vegaEmbed`.

Altair's own HTML renderers load Vega from a CDN, and its `mimetype` renderer writes
outputs that fail nbformat validation (altair 6.x). This renderer emits a `text/html`
output: a `<div>` plus a small inline script that draws the chart with `window.vegaEmbed` as
soon as it exists — at once if the bundle already ran, otherwise on the
`matscale:vega-ready` event fired by the bundle (the book loads it with `defer`, so it runs
after the page's inline scripts). The bundle itself is added to the book's pages by the
local Sphinx extension `book/_ext/matscale_offline.py`.

Static fallback: outside the book there is no bundle (JupyterLab, VS Code, nbconvert,
GitHub), so each output also carries the chart as a PNG drawn by vl-convert (no browser, no
network): an `image/png` part next to the HTML, and the same image inside the `<div>`, shown
until vegaEmbed replaces it. The book keeps the interactive chart: myst-nb prefers
`text/html` over images, and the book's extension drops the inline image from its pages.
"""
from __future__ import annotations

import base64
import json
import re
import struct
import uuid
import warnings
from typing import Any

from matscale.book.assets import READY_EVENT

RENDERER = "matscale"
CHART_CLASS = "matscale-vega-chart"
STATIC_CLASS = "matscale-vega-static"
PENDING_HTML = ('<span class="matscale-vega-pending">Chart loading&#8230; it needs the book\'s offline '
                'Vega bundle (matscale-vega.js).</span>')
PNG_SCALE = 1.5  # PNG pixels per CSS pixel of the chart (sharp on most screens, ~100 kB a chart)
_STATIC = {"enabled": True}

# vega-embed's "..." menu: keep the SVG/PNG export, drop the links to the online editor
DEFAULT_EMBED_OPTIONS: dict[str, Any] = {
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
    "renderer": "svg",
}

_TEMPLATE = """\
<div id="{div_id}" class="{css_class}">{fallback}</div>
<script type="text/javascript">
(function () {{
  var spec = {spec};
  var opt = {opt};
  function draw() {{
    var el = document.getElementById("{div_id}");
    el.textContent = "";
    window.vegaEmbed(el, spec, opt).catch(function (err) {{
      el.textContent = "Chart failed to render: " + err;
      console.error(err);
    }});
  }}
  if (window.vegaEmbed) {{ draw(); }}
  else {{ window.addEventListener("{event}", draw, {{ once: true }}); }}
}})();
</script>
"""


def _js_literal(obj: Any) -> str:
    """JSON for embedding inside a <script>: no '</' (ends the tag) or '<!--' survive."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def static_png(spec: dict, scale: float = PNG_SCALE) -> bytes | None:
    """The chart as PNG bytes (vl-convert), or None with a warning when it cannot be drawn."""
    try:
        import vl_convert as vlc

        from matscale.book.assets import vegalite_version

        return vlc.vegalite_to_png(spec, vl_version=vegalite_version(), scale=scale)
    except Exception as exc:  # a chart that cannot be drawn statically still shows in the book
        warnings.warn(f"no static image for this chart ({type(exc).__name__}: {exc})", stacklevel=2)
        return None


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR header."""
    return struct.unpack(">II", png[16:24])


def static_img(png: bytes, scale: float = PNG_SCALE) -> str:
    """An <img> of `png` at its CSS size (pixels / scale), for the HTML fallback."""
    width, _ = png_size(png)
    data = base64.b64encode(png).decode("ascii")
    return (f'<img class="{STATIC_CLASS}" width="{round(width / scale)}" '
            f'alt="chart (static image)" src="data:image/png;base64,{data}">')


def chart_html(spec: dict, embed_options: dict | None = None, div_id: str | None = None,
               png: bytes | None = None) -> str:
    """The HTML fragment that draws one Vega-Lite `spec` with the page's vegaEmbed.

    With `png`, the fragment shows that image until vegaEmbed draws the interactive chart.
    """
    opt = {**DEFAULT_EMBED_OPTIONS, **(embed_options or {})}
    return _TEMPLATE.format(
        div_id=div_id or f"matscale-vega-{uuid.uuid4().hex}",
        css_class=CHART_CLASS,
        fallback=static_img(png) if png else PENDING_HTML,
        spec=_js_literal(spec),
        opt=_js_literal(opt),
        event=READY_EVENT,
    )


def renderer(spec: dict, embed_options: dict | None = None, **_metadata: Any):
    """altair renderer entry point: `text/html` plus, when enabled, an `image/png` fallback.

    Returns (data, metadata) as IPython's `_repr_mimebundle_` does; the PNG's metadata gives
    its CSS width so that front ends draw it at the chart's size.
    """
    png = static_png(spec) if _STATIC["enabled"] else None
    data = {"text/html": chart_html(spec, embed_options, png=png)}
    if png is None:
        return data, {}
    data["image/png"] = base64.b64encode(png).decode("ascii")
    width, height = png_size(png)
    return data, {"image/png": {"width": round(width / PNG_SCALE), "height": round(height / PNG_SCALE)}}


def strip_static(html: str) -> str:
    """`html` with every inline fallback image replaced by the 'Chart loading' note (the book's
    pages draw the interactive chart; the image would only add weight)."""
    return re.sub(rf'<img class="{STATIC_CLASS}"[^>]*>', PENDING_HTML, html)


def enable(embed_options: dict | None = None, static: bool = True) -> None:
    """Register the renderer with altair and make it the active one.

    static: add the PNG fallback to every chart output (vl-convert, ~0.1-0.5 s a chart).
    """
    import altair as alt

    _STATIC["enabled"] = bool(static)
    if RENDERER not in alt.renderers.names():
        alt.renderers.register(RENDERER, renderer)
    if embed_options:
        alt.renderers.enable(RENDERER, embed_options=embed_options)
    else:
        alt.renderers.enable(RENDERER)
