"""Dataset fingerprints: a short id of WHAT a run trained on, entering its run id.

    fingerprint(root=None) -> str        of a dataset folder (None: the default dataset; a name of
                                         default.DATASETS, e.g. 'omat24-teacher-v1': that dataset)
    synth_fingerprint(structures, seed, calculator) -> str   of a synthetic dataset's recipe
    memory_fingerprint(*datasets) -> str of in-memory datasets (lists of labelled ase.Atoms)

Three kinds, told apart by their prefix:
- `synth-<16 hex>`: a synthetic dataset (it has synth.json). The hash covers the generator's
  manifest only — format version, target size, seed, calculator and the recipe constants —
  never float content, so every machine derives the same id, and the default dataset's id
  is known without generating it (`plan()` of a study works on a fresh clone).
- `content-<16 hex>`: any other folder (real OMat24, imported data): the bytes of every
  metadata.npz plus the relative names and sizes of the .aselmdb files. Cheap (no LMDB is
  opened); a dataset copied elsewhere keeps its id, a re-labelled one gets a new one.
- `memory-<16 hex>`: in-memory datasets given to `train(train_set=..., val_set=...)`: the
  hash of every structure's numbers, positions, cell, pbc and labels (train then val).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from matscale.errors import DataError

DIGITS = 16


def _digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:DIGITS]


def synth_manifest(structures: int, seed: int, calculator: str, recipe: dict | None = None,
                   format: str | None = None) -> dict:
    """The settings that define a synthetic dataset (what synth.json records about its making)."""
    from matscale.data import synth

    return {"format": format or synth.FORMAT, "structures_target": int(structures), "seed": int(seed),
            "calculator": str(calculator), "recipe": recipe if recipe is not None else synth.recipe_constants()}


def synth_fingerprint(structures: int, seed: int = 0, calculator: str = "emt", recipe: dict | None = None,
                      format: str | None = None) -> str:
    """`synth-<hex>` of the dataset `synthesize(out, structures, seed, calculator)` writes."""
    manifest = synth_manifest(structures, seed, calculator, recipe, format)
    return "synth-" + _digest(json.dumps(manifest, sort_keys=True).encode())


def default_fingerprint() -> str:
    """The default dataset's id: read from it when present, else derived from the default
    generator settings (what `ensure_default` would generate) — nothing is generated."""
    from matscale.data import default

    root = default.default_root()
    if default.is_complete(root):
        return fingerprint(root)
    return synth_fingerprint(default.DEFAULT_STRUCTURES, default.DEFAULT_SEED, default.DEFAULT_CALCULATOR)


def is_named(root) -> bool:
    """Whether `root` names a dataset of `default.DATASETS` (and is not an existing folder)."""
    from matscale.data import default

    return isinstance(root, str) and root in default.DATASETS and not Path(root).is_dir()


def named_fingerprint(name: str) -> str:
    """A named dataset's id: read from it when present, else derived from its generator
    settings (as `default_fingerprint` does for the default one) — nothing is generated."""
    from matscale.data import default, synth

    root = default.dataset_root(name)
    if default.is_complete(root):
        return fingerprint(root)
    ds = default.named(name)
    return synth_fingerprint(ds.structures, ds.seed, ds.calculator, recipe=synth.recipe_constants(ds.calculator))


def fingerprint(root: str | os.PathLike | None = None) -> str:
    """The id of the dataset at `root` (None: the default dataset); DataError when there is none."""
    if root is None:
        return default_fingerprint()
    if is_named(root):
        return named_fingerprint(str(root))
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist; point data at an OMat24-layout folder "
                        "(<root>/<split>/<subset>/*.aselmdb) or leave it unset for the default dataset")
    synth_json = root / "synth.json"
    if synth_json.is_file():
        try:
            info = json.loads(synth_json.read_text())
            return synth_fingerprint(info["structures_target"], info["seed"], info["calculator"],
                                     info.get("recipe", {}), info.get("format"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{synth_json} is unreadable ({exc}); regenerate the dataset") from exc
    return content_fingerprint(root)


_CONTENT_CACHE: dict[tuple, str] = {}  # (root, files' names, sizes, mtimes) -> fingerprint, per process


def content_fingerprint(root: Path) -> str:
    """`content-<hex>` from metadata.npz bytes and the names and sizes of the .aselmdb files.

    Every run id of a sweep asks for it, and a real dataset's metadata.npz files can be large,
    so the digest is kept per process while no file's size or modification time changes."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and (p.name == "metadata.npz" or p.suffix == ".aselmdb"))
    if not any(p.suffix == ".aselmdb" for p in files):
        raise DataError(f"{root} holds no .aselmdb files; expected the OMat24 layout <root>/<split>/<subset>/")
    stats = [(p, p.stat()) for p in files]
    key = (str(root.resolve()), tuple((str(p), st.st_size, st.st_mtime_ns) for p, st in stats))
    if key not in _CONTENT_CACHE:
        _CONTENT_CACHE[key] = _content_digest(root, files)
    return _CONTENT_CACHE[key]


def _content_digest(root: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        rel = p.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0")
        if p.name == "metadata.npz":
            h.update(p.read_bytes())
        else:
            h.update(str(p.stat().st_size).encode())
        h.update(b"\0")
    return "content-" + h.hexdigest()[:DIGITS]


def memory_fingerprint(*datasets) -> str:
    """`memory-<hex>` of indexable sequences of labelled ase.Atoms; a string entry (the
    fingerprint of a split read from disk) is hashed as it is."""
    h = hashlib.sha256()
    for ds in datasets:
        if isinstance(ds, str):
            h.update(f"fingerprint:{ds}".encode())
            continue
        h.update(f"dataset:{len(ds)}".encode())
        for i in range(len(ds)):
            atoms = ds[i]
            arrays = [atoms.numbers, atoms.positions, np.asarray(atoms.cell), atoms.pbc]
            calc = atoms.calc
            for key in ("energy", "forces", "stress"):
                value = calc.results.get(key) if calc is not None else None
                arrays.append(np.asarray(value if value is not None else np.nan, dtype=np.float64))
            for a in arrays:
                a = np.ascontiguousarray(a)
                h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return "memory-" + h.hexdigest()[:DIGITS]
