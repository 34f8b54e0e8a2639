"""Helpers shared by the book tests (imported, never collected): Chromium on a built page.

    find_chromium() -> path or None;  open_page(chromium, page, workdir) -> (DOM, page requests)
    page_requests(netlog) -> http(s) URLs a page asked for;  RemoteSources: remote loads in HTML
Chromium is a prerequisite installed by `make browser` (part of `make test`), not by a test.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


def open_page(chromium: str, page: Path, workdir: Path) -> tuple[str, list[str]]:
    """Load `page` from file:// offline; return (DOM after scripts ran, page-initiated URLs)."""
    workdir.mkdir(parents=True, exist_ok=True)
    netlog = workdir / "net.json"
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--disable-default-apps", "--no-default-browser-check",
        "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={workdir / 'profile'}", f"--log-net-log={netlog}",
        "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"chromium failed on {page}:\n{done.stderr[-3000:]}"
    return done.stdout, page_requests(netlog)


def page_requests(netlog: Path) -> list[str]:
    """http(s) URLs the page asked for, from a Chromium net log.

    The browser's own background traffic (update checks, account look-ups) starts with
    initiator "not an origin"; anything a page loads carries the page's origin ("null" for
    file:// pages), so only those requests are returned.
    """
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        url = params.get("url", "")
        if event["type"] == start and url.startswith(("http://", "https://")) \
                and params.get("initiator") != "not an origin":
            urls.append(url)
    return urls


class RemoteSources(HTMLParser):
    """Collect remote URLs a page would load by itself (not plain links the reader clicks)."""

    LOADS = {"script": "src", "img": "src", "iframe": "src", "source": "src", "video": "src",
             "audio": "src", "embed": "src", "object": "data"}

    def __init__(self):
        super().__init__()
        self.remote: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        urls = []
        if tag in self.LOADS:
            urls.append(attrs.get(self.LOADS[tag]) or "")
        if tag == "link" and set((attrs.get("rel") or "").split()) & {
                "stylesheet", "preload", "modulepreload", "icon", "prefetch", "manifest"}:
            urls.append(attrs.get("href") or "")
        self.remote += [u for u in urls if re.match(r"^(https?:)?//", u.strip())]


# -- layout at a given window width (test_book_real: nothing clipped at 1300 px) ------------------
LAYOUT_WIDTH = 1300
# measures after the deferred Vega bundle ran and the charts drew (virtual time, no network)
LAYOUT_PROBE = """<script>
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


def measure_layout(chromium: str, page: Path, workdir: Path, width: int = LAYOUT_WIDTH) -> dict:
    """Box widths of the page's column, tables, charts and legends in a `width` px window."""
    workdir.mkdir(parents=True, exist_ok=True)
    probe = page.with_name(f".{page.stem}.layout.html")
    probe.write_text(page.read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
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
