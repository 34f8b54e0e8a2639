"""The book's layout at a common laptop width: in headless Chromium at 1300 px, the content column
is wide (the theme's ~60em cap is lifted) and no table, chart or chart legend on any page of the
real book sticks out of it (element boxes measured against the column after the charts drew).

Reuses the real book built once per session by tests/test_book_real.py (no second build)."""
from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import pytest

from test_book_real import real_book, toc_pages  # noqa: F401 (fixture)
from test_book_render import chromium, shared_tmp  # noqa: F401 (fixtures)

WIDTH = 1300
MIN_COLUMN = 700  # px of content at 1300 px: the theme's defaults left tables ~30 px too wide for it
# measures after the deferred Vega bundle ran and the charts drew (virtual time, no network)
PROBE = """<script>
window.addEventListener('load', function () { setTimeout(function () {
  var art = document.querySelector('article.bd-article');
  var a = art.getBoundingClientRect(), cs = getComputedStyle(art);
  var right = a.right - parseFloat(cs.paddingRight), left = a.left + parseFloat(cs.paddingLeft);
  var out = {column: {left: left, right: right, width: right - left}, items: []};
  function add(kind, el, box) {
    var r = el.getBoundingClientRect(), b = box.getBoundingClientRect();
    out.items.push({kind: kind, width: r.width, right: r.right, box_width: b.width, box_right: b.right,
                    text: (el.textContent || '').slice(0, 60)});
  }
  art.querySelectorAll('table').forEach(function (t) { add('table', t, t.parentElement); });
  art.querySelectorAll('.matscale-vega-chart svg.marks').forEach(function (s) { add('chart', s, art); });
  art.querySelectorAll('.matscale-vega-chart g.role-legend').forEach(function (g) { add('legend', g, art); });
  var pre = document.createElement('pre');
  pre.id = 'matscale-layout'; pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
}, 3000); });
</script>"""


def measure(chromium: str, page: Path, workdir: Path, width: int = WIDTH) -> dict:  # noqa: F811
    """Box widths of the page's column, tables, charts and legends in a `width` px window."""
    workdir.mkdir(parents=True, exist_ok=True)
    probe = page.with_name(f".{page.stem}.layout.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-extensions",
           "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", f"--window-size={width},900",
           f"--user-data-dir={workdir / 'profile'}", "--virtual-time-budget=6000", "--dump-dom", probe.as_uri()]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(r'<pre id="matscale-layout">(.*?)</pre>', done.stdout, re.S)
    assert found, f"chromium did not measure {page}:\n{done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.slow
@pytest.mark.parametrize("page", toc_pages())
def test_nothing_is_clipped_at_1300_px(real_book, chromium, tmp_path, page):  # noqa: F811
    path = real_book / f"{page}.html"
    source = path.read_text()
    if "<table" not in source and "matscale-vega-chart" not in source:
        pytest.skip(f"{page} has no table or chart")
    m = measure(chromium, path, tmp_path)
    col = m["column"]
    assert col["width"] >= MIN_COLUMN, f"{page}: the content column is only {col['width']:.0f} px wide"
    clipped = []
    for item in m["items"]:
        if item["kind"] == "table":  # within the output box that holds it (wider would scroll or spill)
            if item["width"] > item["box_width"] + 1 or item["right"] > item["box_right"] + 1:
                clipped.append(item)
        elif item["right"] > col["right"] + 1:  # charts and legends within the column
            clipped.append(item)
    assert not clipped, f"{page}: clipped at {WIDTH} px (column {col['width']:.0f} px): {clipped}"
