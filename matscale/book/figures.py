"""Save altair charts as static SVG/PNG/PDF files for papers and slides.

Files go to `<book root>/_build/figures/` by default: generated, next to the built book, and
git-ignored with the rest of `_build/`. The book root is the nearest folder upwards (from the
current directory, which is the notebook's folder during a book build) that holds both
`_config.yml` and `_toc.yml`. Set `MATSCALE_FIGURES_DIR` to send them elsewhere.
Rendering uses vl-convert (no browser, no network); each file is written atomically.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from matscale.errors import ConfigError
from matscale.runs import atomic_write_bytes

FORMATS = ("svg", "png", "pdf")
ENV_VAR = "MATSCALE_FIGURES_DIR"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def book_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest folder at or above `start` holding `_config.yml` and `_toc.yml`."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "_toc.yml").is_file():
            return folder
    return None


def figures_dir(start: str | os.PathLike | None = None) -> Path:
    """Where figures are saved: $MATSCALE_FIGURES_DIR, else <book root>/_build/figures."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    root = book_root(start)
    return (root if root is not None else Path(start or os.getcwd()).resolve()) / "_build" / "figures"


def _render(spec: dict, fmt: str, scale: float) -> bytes:
    import vl_convert as vlc

    from matscale.book.assets import vegalite_version

    version = vegalite_version()
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec, vl_version=version).encode("utf-8")
    if fmt == "png":
        return vlc.vegalite_to_png(spec, vl_version=version, scale=scale)
    return vlc.vegalite_to_pdf(spec, vl_version=version)


def save(
    chart,
    name: str,
    formats: str | Iterable[str] = ("svg",),
    directory: str | os.PathLike | None = None,
    scale: float = 2.0,
) -> list[Path]:
    """Write `chart` as `<directory>/<name>.<fmt>` for each format; returns the paths.

    `name` is a plain file stem (letters, digits, `_.-`); `scale` multiplies PNG pixels.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"figure name {name!r} is not a plain file name; use letters, digits, '_', '.', '-'"
        )
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ConfigError(f"figure formats {unknown or formats!r} not supported; choose from {FORMATS}")
    folder = Path(directory) if directory is not None else figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    spec = chart.to_dict(format="vega-lite")
    paths = []
    for fmt in formats:
        path = folder / f"{name}.{fmt}"
        data = _render(spec, fmt, scale)
        atomic_write_bytes(path, data)
        paths.append(path)
    return paths
