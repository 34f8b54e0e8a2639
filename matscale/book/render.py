"""An altair renderer whose HTML needs no network: it calls the page's `window.vegaEmbed`.

Altair's own HTML renderers load Vega from a CDN, and its `mimetype` renderer writes
outputs that fail nbformat validation (altair 6.x). This renderer emits a plain `text/html`
output: an empty `<div>` plus a small inline script that draws the chart with
`window.vegaEmbed` as soon as it exists — at once if the bundle already ran, otherwise on
the `matscale:vega-ready` event fired by the bundle (the book loads it with `defer`, so it
runs after the page's inline scripts). The bundle itself is added to the book's pages by
the local Sphinx extension `book/_ext/matscale_offline.py`.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

from matscale.book.assets import READY_EVENT

RENDERER = "matscale"
CHART_CLASS = "matscale-vega-chart"

# vega-embed's "..." menu: keep the SVG/PNG export, drop the links to the online editor
DEFAULT_EMBED_OPTIONS: dict[str, Any] = {
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
    "renderer": "svg",
}

_TEMPLATE = """\
<div id="{div_id}" class="{css_class}"><span class="matscale-vega-pending">\
Chart loading&#8230; it needs the book's offline Vega bundle (matscale-vega.js).</span></div>
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


def chart_html(spec: dict, embed_options: dict | None = None, div_id: str | None = None) -> str:
    """The HTML fragment that draws one Vega-Lite `spec` with the page's vegaEmbed."""
    opt = {**DEFAULT_EMBED_OPTIONS, **(embed_options or {})}
    return _TEMPLATE.format(
        div_id=div_id or f"matscale-vega-{uuid.uuid4().hex}",
        css_class=CHART_CLASS,
        spec=_js_literal(spec),
        opt=_js_literal(opt),
        event=READY_EVENT,
    )


def renderer(spec: dict, embed_options: dict | None = None, **_metadata: Any) -> dict:
    """altair renderer entry point: a `text/html` mime bundle."""
    return {"text/html": chart_html(spec, embed_options)}


def enable(embed_options: dict | None = None) -> None:
    """Register the renderer with altair and make it the active one."""
    import altair as alt

    if RENDERER not in alt.renderers.names():
        alt.renderers.register(RENDERER, renderer)
    if embed_options:
        alt.renderers.enable(RENDERER, embed_options=embed_options)
    else:
        alt.renderers.enable(RENDERER)
