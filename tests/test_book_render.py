"""Build a tiny copy of the book and check in headless Chromium that it renders offline.

The tiny book uses the real `_config.yml` and `book/_ext/` with two pages: a notebook that
draws two charts through `matscale.book` + `matscale.charts`, and the real methods page
(equations, so MathJax). Chromium runs with every remote request sent to a dead proxy and
writes a net log; the tests count drawn Vega views (`class="marks"`), typeset equations,
and page-initiated http(s) requests (none allowed). The built HTML is also scanned for
remote script/link/img sources. A second build checks that a failing cell fails the build.

Chromium is Debian's `chromium`, a prerequisite installed by `make browser` (run by `make
test`); without it the Chromium tests skip with that advice. Helpers: tests/helpers.py.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from filelock import FileLock
from helpers import RemoteSources, open_page, page_requests

REPO = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
N_CHARTS = 2  # charts drawn by the tiny notebook below

SETUP_CELL = "import matscale.book\nmatscale.book.setup()"
CHARTS_CELL = """\
import numpy as np
import pandas as pd
from matscale import charts

epochs = np.arange(1, 9)
metrics = pd.DataFrame({
    "epoch": epochs, "step": 10 * epochs, "flops": 1e12 * epochs,
    "train_loss": 3.0 / epochs, "val_loss": 3.3 / epochs ** 0.9,
    "train_loss_energy": 1.0 / epochs, "val_loss_energy": 1.2 / epochs ** 0.9,
    "train_loss_force": 2.0 / epochs, "val_loss_force": 2.1 / epochs ** 0.9,
})
matscale.book.show(charts.loss_curves(metrics, x="epoch"), "tiny_loss_curves")
"""
PARITY_CELL = """\
rng = np.random.default_rng(0)
true = rng.normal(size=(200, 3))
charts.parity(true, true + 0.1 * rng.normal(size=true.shape), "force", "eV/Å")
"""
FAILING_CELL = "raise RuntimeError('this cell fails on purpose')"


# -- building ---------------------------------------------------------------------------------
def _notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny charts page")]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in cells]
    nbformat.validate(nb)
    nbformat.write(nb, path)


def make_tiny_book(root: Path, cells: list[str], with_methods: bool = True) -> Path:
    """The real config and extension, a notebook page made of `cells` and the methods page."""
    (root / "book").mkdir(parents=True)
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
    shutil.copytree(REPO / "book" / "_ext", root / "book" / "_ext",
                    ignore=shutil.ignore_patterns("__pycache__"))
    _notebook(root / "book" / "charts.ipynb", cells)
    toc = "format: jb-book\nroot: book/charts\n"
    if with_methods:
        shutil.copy(REPO / "book" / "methods.md", root / "book" / "methods.md")
        toc += "chapters:\n  - file: book/methods\n"
    (root / "_toc.yml").write_text(toc)
    return root


def build(root: Path, cache: Path) -> subprocess.CompletedProcess:
    # figures go to <root>/_build/figures; the Vega bundle is cached in `cache`
    env = {**os.environ, "MATSCALE_FIGURES_DIR": "", "MATSCALE_CACHE_DIR": str(cache)}
    return subprocess.run(
        [str(JUPYTER_BOOK), "build", "-W", "-n", "--keep-going", str(root)],
        cwd=root, capture_output=True, text=True, timeout=600, env=env,
    )


@pytest.fixture(scope="session")
def tiny_book(shared_tmp) -> Path:
    """The tiny book, built once per test session (shared by xdist workers via a lock)."""
    root, marker = shared_tmp / "tiny_book", shared_tmp / "tiny_book.json"
    with FileLock(str(shared_tmp / "tiny_book.lock")):
        if not marker.exists():
            start = time.perf_counter()
            result = build(make_tiny_book(root, [SETUP_CELL, CHARTS_CELL, PARITY_CELL]),
                           shared_tmp / "asset-cache")
            marker.write_text(json.dumps({
                "rc": result.returncode, "seconds": time.perf_counter() - start,
                "log": (result.stdout + result.stderr)[-8000:],
            }))
    info = json.loads(marker.read_text())
    assert info["rc"] == 0, f"tiny book build failed (rc={info['rc']}):\n{info['log']}"
    return root


# -- tests ------------------------------------------------------------------------------------
@pytest.mark.slow  # builds a (tiny) Jupyter Book
def test_charts_draw_offline(tiny_book, chromium, tmp_path):
    page = tiny_book / "_build" / "html" / "book" / "charts.html"
    html = page.read_text()
    assert html.count('class="matscale-vega-chart"') == N_CHARTS
    assert "matscale-vega.js" in html, "the Vega bundle is not added to the chart page"
    dom, requests = open_page(chromium, page, tmp_path / "charts")
    assert dom.count('class="marks"') == N_CHARTS, "not every chart drew (count of Vega SVG views)"
    shown = re.sub(r"<script\b.*?</script>", "", dom, flags=re.S)  # what the reader sees
    assert "Chart failed to render" not in shown
    assert "matscale-vega-pending" not in shown, "a chart is still waiting for window.vegaEmbed"
    assert requests == [], f"the chart page requested remote URLs: {requests}"


@pytest.mark.slow  # builds a (tiny) Jupyter Book
def test_math_renders_offline(tiny_book, chromium, tmp_path):
    page = tiny_book / "_build" / "html" / "book" / "methods.html"
    html = page.read_text()
    assert "_static/mathjax/tex-svg.js" in html, "MathJax is not served from the book's _static"
    assert "matscale-vega.js" not in html, "pages without charts should not load the Vega bundle"
    dom, requests = open_page(chromium, page, tmp_path / "methods")
    n_math = html.count('class="math notranslate nohighlight"')
    assert n_math > 5
    assert dom.count("<mjx-container") >= n_math, "MathJax did not typeset every equation"
    assert "<mjx-merror" not in dom
    assert requests == [], f"the methods page requested remote URLs: {requests}"


@pytest.mark.slow  # builds a (tiny) Jupyter Book
def test_built_html_loads_nothing_remote(tiny_book):
    html_dir = tiny_book / "_build" / "html"
    pages = sorted(html_dir.rglob("*.html"))
    assert len(pages) >= 3
    for page in pages:
        parser = RemoteSources()
        parser.feed(page.read_text(errors="replace"))
        assert parser.remote == [], f"{page.relative_to(html_dir)} loads remote resources: {parser.remote}"
    for css in html_dir.rglob("*.css"):
        remote = re.findall(r"(?:@import\s+|url\()\s*['\"]?(https?://[^'\")\s]+)", css.read_text(errors="replace"))
        assert remote == [], f"{css.relative_to(html_dir)} loads remote resources: {remote}"
    bundle = html_dir / "_static" / "matscale-vega.js"
    text = bundle.read_text()
    assert text.lstrip().startswith("/*") and "(function () {" in text and "window.vegaEmbed" in text


@pytest.mark.slow  # builds a (tiny) Jupyter Book
def test_figures_saved_next_to_the_build(tiny_book):
    svg = tiny_book / "_build" / "figures" / "tiny_loss_curves.svg"
    assert svg.is_file()
    text = svg.read_text()
    assert text.lstrip().startswith("<svg") and "val" in text and "train" in text


@pytest.mark.slow  # builds a (tiny) Jupyter Book
def test_failing_notebook_fails_the_build(tmp_path, shared_tmp):
    root = make_tiny_book(tmp_path / "broken", [SETUP_CELL, FAILING_CELL], with_methods=False)
    result = build(root, shared_tmp / "asset-cache")  # the bundle cache is written atomically
    log = result.stdout + result.stderr
    assert result.returncode != 0, f"a failing cell did not fail the build:\n{log[-3000:]}"
    assert "this cell fails on purpose" in log or "Executing notebook failed" in log


def test_net_log_reading_keeps_page_requests_only(tmp_path):
    kinds = {"URL_REQUEST_START_JOB": 7, "CORS_REQUEST": 8}
    events = [
        {"type": 7, "params": {"initiator": "not an origin", "url": "https://update.example/check"}},
        {"type": 7, "params": {"initiator": "null", "url": "https://cdn.example/vega.js"}},
        {"type": 7, "params": {"initiator": "null", "url": "file:///book/_static/matscale-vega.js"}},
        {"type": 8, "params": {"url": "https://cdn.example/other.js"}},
        {"type": 7, "params": {"net_error": -130}},
    ]
    log = tmp_path / "net.json"
    log.write_text(json.dumps({"constants": {"logEventTypes": kinds}, "events": events}))
    assert page_requests(log) == ["https://cdn.example/vega.js"]
    parser = RemoteSources()
    parser.feed('<script src="https://cdn.example/a.js"></script><link rel="stylesheet" href="//x.org/s.css">'
                '<a href="https://example.org">a link is fine</a><img src="_static/local.png">')
    assert parser.remote == ["https://cdn.example/a.js", "//x.org/s.css"]
