"""`python -m matscale models [--json] [--arch NAME ...]`: every architecture and size with its
parameter counts, total and non-embedding (the scaling-law N).

Models are built on the `meta` device, so counting even the largest sizes allocates nothing
and takes milliseconds. An architecture whose module cannot be imported (or a size that
cannot be built) is reported on stderr with the reason and skipped; the listing goes on.

Most of the time goes into importing fairchem (eSEN, EScAIP: ~5-10 s), so counts are cached in
`<cache>/model-params.json` (see `matscale.book.assets.cache_dir`), keyed by the architecture
module's source (every module of a package), the size's hyperparameters and the torch / fairchem
versions: later calls import nothing they do not need.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from matscale.errors import ConfigError
from matscale.models import ARCH_MODULES, build, count_parameters, spec


def _cache_key(arch: str, size: str, kwargs: dict) -> str:
    import hashlib
    import importlib.metadata as md
    import importlib.util

    from matscale.models import ARCH_MODULES

    from pathlib import Path

    found = importlib.util.find_spec(ARCH_MODULES[arch])
    files = [Path(found.origin)] if found and found.origin else []
    if found and found.submodule_search_locations:  # a package (equiformer_v2): every module of it
        files = sorted(f for d in found.submodule_search_locations for f in Path(d).rglob("*.py"))
    source = b"".join(f.read_bytes() for f in files)
    versions = []
    for pkg in ("torch", "fairchem-core", "e3nn"):
        try:
            versions.append(md.version(pkg))
        except md.PackageNotFoundError:
            versions.append("")
    blob = json.dumps([arch, size, kwargs, versions], sort_keys=True, default=str).encode() + source
    return f"{arch}/{size}/" + hashlib.sha256(blob).hexdigest()[:16]


def _cache_path():
    from matscale.book.assets import cache_dir

    return cache_dir() / "model-params.json"


def _load_cache() -> dict:
    try:
        return json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict) -> None:
    from matscale.runs import atomic_write_json

    try:
        atomic_write_json(_cache_path(), cache)
    except OSError:  # an unwritable cache is skipped
        pass


def _count(arch: str, size: str) -> tuple[int, int]:
    try:
        with torch.device("meta"):
            return count_parameters(build(arch, size))
    except (NotImplementedError, RuntimeError):  # a builder that needs real tensors at init
        return count_parameters(build(arch, size))


def rows(archs: list[str], errors: list[str]) -> list[dict]:
    """One dict per (arch, size); problems are appended to `errors` as messages."""
    out = []
    cache = _load_cache()
    before = dict(cache)
    for arch in archs:
        try:
            s = spec(arch)
        except Exception as exc:  # an architecture being written, a missing optional dependency
            errors.append(f"{arch}: unavailable ({type(exc).__name__}: {exc})")
            continue
        for size, kwargs in s.sizes.items():
            try:
                key = _cache_key(arch, size, kwargs)
                if key not in cache:
                    cache[key] = list(_count(arch, size))
                total, non_embedding = cache[key]
            except Exception as exc:
                errors.append(f"{arch}/{size}: cannot be built ({type(exc).__name__}: {exc})")
                continue
            out.append({
                "arch": arch, "size": size, "params_total": total, "params_non_embedding": non_embedding,
                "trainable": s.trainable, "default": size == s.default_size,
                "hyperparameters": kwargs, "description": s.description,
            })
    if cache != before:
        _save_cache(cache)
    return out


def _table(items: list[dict]) -> str:
    lines = [f"{'arch':<14}{'size':<6}{'params':>14}{'non-embedding':>15}  description"]
    last = None
    for r in items:
        desc = r["description"] if r["arch"] != last else ""
        size = r["size"] + ("*" if r["default"] else "")
        lines.append(f"{r['arch']:<14}{size:<6}{r['params_total']:>14,}{r['params_non_embedding']:>15,}  {desc}")
        last = r["arch"]
    lines.append("* default size; non-embedding excludes element embedding tables (the scaling-law N)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matscale models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print a JSON list of {arch, size, params_total, "
                        "params_non_embedding, trainable, default, hyperparameters, description}")
    parser.add_argument("--output", default=None, metavar="FILE", help="also write the JSON list to FILE")
    parser.add_argument("--arch", action="append", metavar="NAME",
                        help=f"only this architecture (repeatable); one of: {', '.join(ARCH_MODULES)}")
    args = parser.parse_args(argv)
    archs = args.arch or list(ARCH_MODULES)
    unknown = [a for a in archs if a not in ARCH_MODULES]
    if unknown:
        raise ConfigError(f"unknown architecture {unknown[0]!r}; choose one of: {', '.join(ARCH_MODULES)}")
    errors: list[str] = []
    items = rows(archs, errors)
    for message in errors:
        print(f"warning: {message}", file=sys.stderr)
    payload = json.dumps(items, indent=1)
    if args.output:
        from matscale.runs import atomic_write_bytes

        atomic_write_bytes(args.output, (payload + "\n").encode())
    print(payload if args.json else _table(items))
    return 0 if items or not errors else 1
