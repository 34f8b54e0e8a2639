"""OMat24's splits, subsets and download releases: the names everything else keys on.

The per-subset counts are the released validation counts (release 241220), used as the
sampling mix of the synthetic generator so that its subsets have OMat24's proportions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from matscale.errors import DataError

SPLITS: tuple[str, ...] = ("train", "val")

# subset -> released validation row count (notes/omat24_data.md §2, release 241220)
VAL_COUNTS: dict[str, int] = {
    "rattled-1000": 117_004,
    "rattled-1000-subsampled": 39_785,
    "rattled-500": 71_522,
    "rattled-500-subsampled": 41_021,
    "rattled-300": 65_235,
    "rattled-300-subsampled": 35_579,
    "aimd-from-PBE-1000-npt": 212_737,
    "aimd-from-PBE-1000-nvt": 205_165,
    "aimd-from-PBE-3000-npt": 62_130,
    "aimd-from-PBE-3000-nvt": 79_977,
    "rattled-relax": 95_206,
}
SUBSETS: tuple[str, ...] = tuple(VAL_COUNTS)

# download releases (notes §4): train archives are under 241018, the corrected val under 241220
BASE_URL = "https://dl.fbaipublicfiles.com/opencatalystproject/data/omat"
RELEASES: dict[str, str] = {"train": "241018", "val": "241220"}


@dataclass(frozen=True)
class SubsetSpec:
    """How a subset is sampled: kind is 'rattled', 'aimd' or 'relax'."""

    name: str
    kind: str
    temperature_K: float | None = None
    ensemble: str | None = None  # 'nvt' | 'npt' for aimd
    subsampled: bool = False


def spec(name: str) -> SubsetSpec:
    """The sampling recipe encoded in an OMat24 subset name."""
    check_subsets([name])
    if name == "rattled-relax":
        return SubsetSpec(name, "relax")
    if name.startswith("rattled-"):
        parts = name.split("-")
        return SubsetSpec(name, "rattled", float(parts[1]), subsampled=name.endswith("-subsampled"))
    _, _, _, temp, ens = name.split("-")
    return SubsetSpec(name, "aimd", float(temp), ens)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    return split


def check_subsets(names: Iterable[str] | str | None, available: Iterable[str] | None = None) -> tuple[str, ...]:
    """Validate subset names (None means all); unknown names raise DataError listing valid ones."""
    valid = tuple(available) if available is not None else SUBSETS
    if names is None:
        return valid
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    names = tuple(names)
    if not names:
        raise DataError(f"no subsets given; choose from: {', '.join(valid)}")
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise DataError(f"unknown subset(s) {', '.join(map(repr, unknown))}; valid subsets are: {', '.join(valid)}")
    return tuple(dict.fromkeys(names))
