"""Book infrastructure without a build: config, renderer HTML, offline assets, figure files."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import altair as alt
import nbformat
import pandas as pd
import pytest
import yaml

import matscale.book
from matscale.book import assets, figures, render
from matscale.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def small_chart():
    df = pd.DataFrame({"x": [1, 2, 3], "y": [3.0, 1.0, 2.0], "label": ["a</script>", "b", "c"]})
    return alt.Chart(df).mark_line().encode(x="x:Q", y="y:Q", tooltip="label:N")


# -- book configuration -----------------------------------------------------------------------
def test_config_excludes_heavy_folders_and_registers_extension():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    for folder in (".venv", "runs", "data", "tests", "matscale", "bench", "_build"):
        assert folder in config["exclude_patterns"], f"{folder} must be excluded from Sphinx"
    assert config["execute"]["execute_notebooks"] in ("force", "cache")
    assert not config["execute"].get("allow_errors", False)
    ext = config["sphinx"]["local_extensions"]
    assert (REPO / ext["matscale_offline"] / "matscale_offline.py").is_file()


def test_toc_pages_exist():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for chapter in toc.get("chapters", []):
        files.append(chapter["file"])
    for entry in files:
        matches = [p for p in (REPO / f"{entry}{s}" for s in ("", ".md", ".ipynb")) if p.is_file()]
        assert matches, f"_toc.yml names {entry}, which does not exist"


# -- renderer ---------------------------------------------------------------------------------
def test_renderer_html_calls_window_vegaembed_without_cdn():
    html = render.chart_html(small_chart().to_dict(), div_id="c1")
    assert 'id="c1"' in html and f'class="{render.CHART_CLASS}"' in html
    assert "window.vegaEmbed(" in html and assets.READY_EVENT in html
    assert "<script src" not in html and "http" not in html.lower().replace("https://vega.github.io/schema", "")
    # data cannot close the script tag early: exactly one </script>, the real one
    assert html.count("</script>") == 1
    assert '"editor":false' in html  # no link to the online editor


def test_setup_enables_renderer_and_output_is_valid_nbformat():
    matscale.book.setup()
    try:
        assert alt.renderers.active == render.RENDERER
        bundle, metadata = small_chart()._repr_mimebundle_()
        # the interactive HTML for the book plus a static PNG for every other front end
        assert set(bundle) == {"text/html", "image/png"} and render.CHART_CLASS in bundle["text/html"]
        assert f'class="{render.STATIC_CLASS}"' in bundle["text/html"]
        assert bundle["image/png"] in bundle["text/html"]  # the same image, shown until vegaEmbed draws
        assert metadata["image/png"]["width"] > 50
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("chart")
        cell.outputs = [nbformat.v4.new_output("display_data", data=bundle, metadata=metadata)]
        nb.cells = [cell]
        nbformat.validate(nb)
    finally:
        alt.renderers.enable("default")


def test_static_fallback_can_be_left_out_and_is_dropped_from_book_pages():
    matscale.book.setup(static=False)
    try:
        bundle, _ = small_chart()._repr_mimebundle_()
        assert set(bundle) == {"text/html"} and "Chart loading" in bundle["text/html"]
    finally:
        alt.renderers.enable("default")
    png = render.static_png(small_chart().to_dict())
    html = render.chart_html(small_chart().to_dict(), div_id="c2", png=png)
    stripped = render.strip_static(html)
    assert render.STATIC_CLASS in html and render.STATIC_CLASS not in stripped
    assert "Chart loading" in stripped and "window.vegaEmbed(" in stripped


def test_embed_options_are_merged():
    html = render.chart_html({"mark": "point"}, embed_options={"renderer": "canvas"})
    assert '"renderer":"canvas"' in html and '"export":true' in html


# -- offline assets ---------------------------------------------------------------------------
def test_vega_bundle_is_cached(tmp_path, monkeypatch):
    calls = []

    def fake_bundle():
        calls.append(1)
        return "(function () { window.vegaEmbed = function () {}; })();\n"

    monkeypatch.setenv("MATSCALE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(assets, "vega_bundle_js", fake_bundle)
    first = assets.write_vega_bundle(tmp_path / "a")
    second = assets.write_vega_bundle(tmp_path / "b")
    assert len(calls) == 1, "the second book build should reuse the cached bundle"
    assert first.read_text() == second.read_text() == fake_bundle()
    assert first.name == assets.VEGA_JS


def test_mathjax_copy_has_the_svg_component(tmp_path):
    folder = assets.write_mathjax(tmp_path)
    assert (folder / "tex-svg.js").stat().st_size > 1_000_000
    assert (folder / "input" / "tex" / "extensions" / "ams.js").is_file()
    assert assets.MATHJAX_JS == "mathjax/tex-svg.js"


def test_missing_mathjax_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="sphinx-mathjax-offline"):
        assets.mathjax_source()


def test_vegalite_version_matches_altair():
    version = assets.vegalite_version()
    assert version is None or alt.SCHEMA_VERSION.lstrip("v").startswith(version + ".")


# -- figure files -----------------------------------------------------------------------------
def test_save_svg_and_png(tmp_path):
    paths = matscale.book.save(small_chart(), "line", formats=("svg", "png"), directory=tmp_path)
    assert [p.name for p in paths] == ["line.svg", "line.png"]
    assert paths[0].read_text().lstrip().startswith("<svg")
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp")), "temp files must not be left behind"


@pytest.mark.parametrize("name", ["../escape", "a b", "", "/abs"])
def test_save_rejects_bad_names(tmp_path, name):
    with pytest.raises(ConfigError, match="figure name"):
        matscale.book.save(small_chart(), name, directory=tmp_path)


def test_save_rejects_unknown_format(tmp_path):
    with pytest.raises(ConfigError, match="not supported"):
        matscale.book.save(small_chart(), "x", formats="gif", directory=tmp_path)


def test_figures_dir_is_next_to_the_build(tmp_path, monkeypatch):
    monkeypatch.delenv(figures.ENV_VAR, raising=False)
    (tmp_path / "_config.yml").write_text("title: t\n")
    (tmp_path / "_toc.yml").write_text("root: a\n")
    nested = tmp_path / "book" / "deeper"
    nested.mkdir(parents=True)
    assert figures.book_root(nested) == tmp_path.resolve()
    assert figures.figures_dir(nested) == tmp_path.resolve() / "_build" / "figures"
    monkeypatch.setenv(figures.ENV_VAR, str(tmp_path / "elsewhere"))
    assert figures.figures_dir(nested) == tmp_path / "elsewhere"


def test_show_displays_once_and_saves(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    chart = small_chart()
    assert matscale.book.show(chart, "shown", directory=tmp_path) is None
    assert shown == [chart] and (tmp_path / "shown.svg").is_file()
