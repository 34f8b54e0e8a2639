"""The real book, built from the committed default study, opened page by page in headless Chromium.

`make book` builds the same pages; here the build goes to a temporary folder and the dataset and
parity pages read the tiny dataset (MATSCALE_BOOK_DATA, see matscale.data.default.book_data; not
MATSCALE_DATA, which would change the study's run ids), so the test needs neither the
20,000-structure default set nor a writable checkout. Every page of _toc.yml must build, every chart on it must draw (Vega SVG
views counted against the charts in the HTML) with all remote requests sent to a dead proxy, no
page may ask for a remote URL, and the study pages must carry what the book promises: for each
architecture of the default study a data and a parameter scaling fit with a band and exponents
with confidence intervals, one comparison table, and the compute frontier.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from helpers import LAYOUT_WIDTH, RemoteSources, measure_layout, open_page

pytestmark = pytest.mark.slow  # builds the whole book (~2.7 min of CI time)

REPO = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
STUDY_ARCHS = ("schnet", "equiformer_v2", "transformer")


def toc_pages() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        pages += [c["file"] for c in part["chapters"]]
    return pages


@pytest.fixture(scope="session")
def real_book(shared_tmp, tiny_data_root) -> Path:
    """The real book's HTML folder, built once per test session (xdist workers share it)."""
    out, marker = shared_tmp / "real_book", shared_tmp / "real_book.json"
    with FileLock(str(shared_tmp / "real_book.lock")):
        if not marker.exists():
            env = {k: v for k, v in os.environ.items() if k != "MATSCALE_DATA"}  # the committed study's data
            env = {**env, "MATSCALE_BOOK_DATA": str(tiny_data_root),
                   "MATSCALE_FIGURES_DIR": str(out / "figures"), "MATSCALE_CACHE_DIR": str(shared_tmp / "asset-cache"),
                   "OMP_NUM_THREADS": "1"}
            start = time.perf_counter()
            result = subprocess.run([str(JUPYTER_BOOK), "build", "-W", "-n", "--keep-going", "--path-output",
                                     str(out), str(REPO)], cwd=REPO, capture_output=True, text=True, timeout=1500,
                                    env=env)
            marker.write_text(json.dumps({"rc": result.returncode, "seconds": time.perf_counter() - start,
                                          "log": (result.stdout + result.stderr)[-8000:]}))
    info = json.loads(marker.read_text())
    assert info["rc"] == 0, f"the book did not build (rc={info['rc']}):\n{info['log']}"
    return out / "_build" / "html"


def _visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_default_study_is_committed():
    """The book is rebuilt from committed results: every planned point has its run folder."""
    from matscale import study

    table = study.results("default")
    done = table[table["finished"]]
    assert table["finished"].all(), study.status_table(table).to_string()
    tracked = subprocess.run(["git", "ls-files", "runs"], cwd=REPO, capture_output=True, text=True).stdout.split()
    # only best.pt of the best run per architecture is committed (tests/test_committed_weights.py)
    assert all(t.endswith("/checkpoints/best.pt") for t in tracked if "/checkpoints/" in t), "last.pt committed"
    for arch in STUDY_ARCHS:  # graph models: data series x 3 seeds + grid; the transformer: its baseline check
        assert (done["arch"] == arch).sum() >= (4 if arch == "transformer" else 25), arch


@pytest.mark.parametrize("page", toc_pages())
def test_every_page_draws_its_charts_offline(real_book, chromium, tmp_path, page):
    path = real_book / f"{page}.html"
    assert path.is_file(), f"{page} was not built"
    html = path.read_text()
    parser = RemoteSources()
    parser.feed(html)
    assert parser.remote == [], f"{page} loads remote resources: {parser.remote}"
    n_charts = html.count('class="matscale-vega-chart"')
    dom, requests = open_page(chromium, path, tmp_path / "chromium")
    assert dom.count('class="marks"') == n_charts, f"{page}: not every one of its {n_charts} charts drew"
    shown = _visible_text(dom)
    assert "Chart failed to render" not in shown and "Traceback" not in shown
    assert requests == [], f"{page} requested remote URLs: {requests}"


def test_the_study_pages_show_fits_with_uncertainty_for_every_architecture(real_book):
    pages = {name: _visible_text((real_book / "book" / f"{name}.html").read_text())
             for name in ("data_scaling", "parameter_scaling", "compute_scaling", "architectures")}
    for name in ("data_scaling", "parameter_scaling"):
        text = pages[name]
        assert "95% CI" in text and "AICc" in text and "±" in text, name
        for arch in STUDY_ARCHS:
            assert arch in text, (name, arch)
            # no fit only with its reason: not identified, or no law fitted to a zero-force plateau
            assert not re.search(rf"{arch}\s*: no fit — (?!.*(not identified|zero-force baseline))", text), \
                f"{name}: {arch} has no fit"
    assert "gamma" in pages["compute_scaling"] and "front" in pages["compute_scaling"]
    table = pages["architectures"]
    for arch in STUDY_ARCHS:
        assert arch in table
    assert "compute exponent γ" in table and "±" in table
    for name in ("data_scaling", "parameter_scaling", "compute_scaling", "architectures"):
        html = (real_book / "book" / f"{name}.html").read_text()
        assert html.count('class="matscale-vega-chart"') >= 1, name


# -- layout: at a common laptop width the content column is wide (the theme's ~60em cap is lifted, the
# on-page TOC moves behind its header button below 1600 px) and no table, chart or chart legend sticks
# out of it (element boxes measured against the column after the charts drew)
MIN_COLUMN = 900  # px of content at 1300 px (the theme's defaults gave 692, with tables ~30 px too wide)


@pytest.mark.slow
@pytest.mark.parametrize("page", toc_pages())
def test_nothing_is_clipped_at_1300_px(real_book, chromium, tmp_path, page):
    path = real_book / f"{page}.html"
    source = path.read_text()
    if "<table" not in source and "matscale-vega-chart" not in source:
        pytest.skip(f"{page} has no table or chart")
    m = measure_layout(chromium, path, tmp_path)
    col = m["column"]
    assert col["width"] >= MIN_COLUMN, f"{page}: the content column is only {col['width']:.0f} px wide"
    clipped = []
    for item in m["items"]:
        if item["kind"] == "table":  # within the output box that holds it (wider would scroll or spill)
            if item["width"] > item["box_width"] + 1 or item["right"] > item["box_right"] + 1:
                clipped.append(item)
        elif item["right"] > col["right"] + 1:  # charts and legends within the column
            clipped.append(item)
    assert not clipped, f"{page}: clipped at {LAYOUT_WIDTH} px (column {col['width']:.0f} px): {clipped}"
