"""The embedded datasets: synthetic OMat24, generated once and cached.

Two named datasets (DATASETS): the default `omat24-emt-v1` (EMT labels, 7 fcc metals; what the
study trains on) and `omat24-teacher-v1` (labels of the pretrained CHGNet potential on parents
from ~70 elements and 15 prototypes; optional extra `teacher`; made by `make data-teacher`).

Location: `$MATSCALE_DATA` if set; else `<repo>/data/omat24-emt-v1` when matscale runs from a
source checkout (git-ignored `data/`); else `~/.cache/matscale/omat24-emt-v1` (or under
`$XDG_CACHE_HOME`). `ensure_dataset` is safe against interruption (built in a temporary
directory and renamed) and against concurrent callers (an exclusive lock file next to it,
so a second process waits and then reuses the first one's result).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from matscale.errors import DataError

NAME = "omat24-emt-v1"
DEFAULT_STRUCTURES = 20_000  # training structures (val adds ≈10 %)
DEFAULT_SEED = 0
DEFAULT_CALCULATOR = "emt"
ENV_VAR = "MATSCALE_DATA"


@dataclass(frozen=True)
class NamedDataset:
    """A synthetic dataset known by name: its generator settings and the variable overriding its folder."""

    name: str
    structures: int  # training structures (val adds ≈10 %)
    seed: int
    calculator: str
    env_var: str


TEACHER_NAME = "omat24-teacher-v1"
# sized so that generation takes ~15 CPU-minutes on one core (README: measured time and size)
TEACHER_STRUCTURES = 1_500
DATASETS: dict[str, NamedDataset] = {
    NAME: NamedDataset(NAME, DEFAULT_STRUCTURES, DEFAULT_SEED, DEFAULT_CALCULATOR, ENV_VAR),
    TEACHER_NAME: NamedDataset(TEACHER_NAME, TEACHER_STRUCTURES, 0, "chgnet", "MATSCALE_TEACHER_DATA"),
}


def _source_checkout() -> Path | None:
    from matscale.runs import repo_root

    return repo_root()


def named(name: str) -> NamedDataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; the named datasets are: {', '.join(DATASETS)}")
    return DATASETS[name]


def dataset_root(name: str) -> Path:
    """Where named dataset `name` lives (it may not exist yet): `$<its env var>` if set, else
    `<repo>/data/<name>` in a source checkout, else `~/.cache/matscale/<name>`."""
    ds = named(name)
    env = os.environ.get(ds.env_var)
    if env:
        return Path(env).expanduser()
    repo = _source_checkout()
    if repo is not None:
        return repo / "data" / name
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "matscale" / name


def default_root() -> Path:
    """Where the default dataset lives (it may not exist yet)."""
    return dataset_root(NAME)


def is_complete(root: Path) -> bool:
    """A finished dataset: both splits present (synthetic ones also carry synth.json)."""
    root = Path(root)
    if (root / "synth.json").is_file():
        return True
    return all(any((root / split).glob("*/*.aselmdb")) for split in ("train", "val"))


def _synth_matches(root: Path, structures: int, seed: int, calculator: str) -> bool:
    try:
        info = json.loads((root / "synth.json").read_text())
    except (OSError, ValueError):
        return True  # not ours (e.g. real OMat24 pointed to by MATSCALE_DATA): accept as is
    return (info.get("structures_target"), info.get("seed"), info.get("calculator")) == (structures, seed, calculator)


def ensure_dataset(root: str | os.PathLike, structures: int, seed: int = 0, calculator: str = "emt",
                   workers: int | None = None, progress: bool = True, accept_any: bool = False) -> Path:
    """Return `root`, generating it first (once, under a lock) if it does not exist.

    accept_any: reuse whatever complete dataset is at `root` (else a synthetic one made
    with other settings is an error).
    """
    from matscale.data import synth

    root = Path(root).expanduser()
    if is_complete(root):
        if not accept_any and not _synth_matches(root, structures, seed, calculator):
            raise DataError(f"{root} holds a synthetic dataset made with other settings; delete it or point "
                            f"{ENV_VAR} elsewhere")
        return root
    if root.exists() and any(root.iterdir()):
        raise DataError(f"{root} exists but is not a complete dataset; delete it to regenerate")
    root.parent.mkdir(parents=True, exist_ok=True)
    lock_path = root.parent / f".{root.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent generator holds it until it has finished
        try:
            if is_complete(root):
                return root
            for stale in root.parent.glob(f".{root.name}.tmp-*"):  # left by an interrupted run
                shutil.rmtree(stale, ignore_errors=True)
            if root.exists():
                root.rmdir()
            if progress:
                print(f"generating the dataset ({structures} training structures, seed {seed}, "
                      f"{calculator} labels) in {root} — once; later calls reuse it", file=sys.stderr)
            synth.synthesize(root, structures, seed=seed, calculator=calculator, workers=workers, progress=progress)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root


BOOK_DATA_VAR = "MATSCALE_BOOK_DATA"


def book_data(data: str | os.PathLike | None = None) -> str | None:
    """The dataset the book's data-reading pages (dataset, parity) use: `data`, else
    `$MATSCALE_BOOK_DATA`, else None (the default dataset).

    Study pages find their runs by run id, and the run id holds the default dataset's
    fingerprint, which `$MATSCALE_DATA` changes; so a quick build (or the real-book test) points
    only these pages at a small dataset, through this variable, and leaves the study intact."""
    if data is not None and str(data) != "":
        return str(data)
    return os.environ.get(BOOK_DATA_VAR) or None


def ensure_default(progress: bool = True, workers: int | None = None) -> Path:
    """The default dataset's root, generated on first use. With $MATSCALE_DATA set, any
    complete dataset there (synthetic with other settings, or real OMat24) is used as is."""
    return ensure_dataset(default_root(), DEFAULT_STRUCTURES, DEFAULT_SEED, DEFAULT_CALCULATOR,
                          workers=workers, progress=progress, accept_any=bool(os.environ.get(ENV_VAR)))


def ensure_named(name: str, progress: bool = True, workers: int | None = None) -> Path:
    """Named dataset `name`'s root, generated on first use (with its env var set, any complete
    dataset there is used as is)."""
    ds = named(name)
    return ensure_dataset(dataset_root(name), ds.structures, ds.seed, ds.calculator, workers=workers,
                          progress=progress, accept_any=bool(os.environ.get(ds.env_var)))


def ensure_teacher(progress: bool = True, workers: int | None = None) -> Path:
    """The teacher dataset's root (`omat24-teacher-v1`), generated on first use (needs the
    `teacher` extra; ~15 CPU-minutes)."""
    return ensure_named(TEACHER_NAME, progress=progress, workers=workers)
