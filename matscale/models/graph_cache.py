"""A bounded in-memory cache of per-structure radius graphs (neighbour indices and shifts).

Without position augmentation, a structure's periodic radius graph is the same every epoch,
so rebuilding it (matscipy + the neighbour cap, ~0.5 ms per structure) is wasted work.
`GraphCache` keeps, per structure, the capped (i, j, S) arrays — local atom indices and
integer lattice shifts, ~7 bytes per edge — and `radius_graph` assembles a whole batch from
cached pieces and freshly built misses in one concatenation. Edge vectors are always
recomputed from the batch's positions and cell (`edge_vectors`), so they stay differentiable
and results are bit-identical with the cache on and off (tested).

Key: a 128-bit BLAKE2b digest of the structure's content (atomic numbers, positions, cell,
pbc exactly as the batch holds them) plus (cutoff, max_neighbors). A content key never
returns a stale graph: a moved or rotated structure simply misses. Rotation augmentation
therefore gains nothing from the cache (every batch is new), so the training loop switches
the cache off under `rotation_augment` instead of filling it with graphs that never recur.
(Indices and shifts are in fact rotation invariant, up to pairs within float rounding of the
cutoff; keying on the un-rotated structure would reuse them, at the price of results that
are no longer bit-identical to the uncached path — not done.)

Size bound: `max_bytes` (TrainConfig `graph_cache_mb`, not in the run id since results do
not change); least-recently-used entries are evicted beyond it. 0 disables caching.

Activation: `with use(cache): ...` makes every `radius_graph` call in the block (SchNet,
EquiformerV2, eSEN, EScAIP all build their graph through it) consult `cache`; outside any
`use` block nothing is cached. A per-thread setting, so concurrent in-process runs do not share.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

_LOCAL = threading.local()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else 0.0


def _narrow(a: np.ndarray) -> np.ndarray:
    """The smallest signed integer dtype holding `a` exactly (int8/16/32/64)."""
    if a.size == 0:
        return a.astype(np.int8)
    lo, hi = int(a.min()), int(a.max())
    for dt in (np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return a.astype(dt)
    return a.astype(np.int64)


class GraphCache:
    """LRU map structure key -> (i, j, S) with a byte bound; see the module docstring."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.stats = CacheStats()
        self._entries: OrderedDict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

    @classmethod
    def from_mb(cls, mb: float) -> "GraphCache | None":
        """A cache of `mb` MiB, or None for mb <= 0 (caching off)."""
        return cls(int(mb * 2**20)) if mb and mb > 0 else None

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float,
            max_neighbors: int | None) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        for a in (numbers, positions, cell, pbc):
            a = np.ascontiguousarray(a)
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            h.update(a.tobytes())
        h.update(repr((float(cutoff), max_neighbors if max_neighbors and max_neighbors > 0 else None)).encode())
        return h.digest()

    def get(self, key: bytes):
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return entry

    def put(self, key: bytes, i: np.ndarray, j: np.ndarray, S: np.ndarray) -> None:
        entry = (_narrow(i), _narrow(j), _narrow(S))
        size = sum(a.nbytes for a in entry) + 100  # + dict/tuple overhead, roughly
        if size > self.max_bytes or key in self._entries:
            return
        self._entries[key] = entry
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.nbytes -= sum(a.nbytes for a in old) + 100
            self.stats.evictions += 1

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0


def active() -> GraphCache | None:
    """The cache `radius_graph` uses in this thread (None: build every graph)."""
    return getattr(_LOCAL, "cache", None)


@contextmanager
def use(cache: GraphCache | None):
    """Make `cache` the active one inside the block (None: no caching); restores the previous one."""
    previous = active()
    _LOCAL.cache = cache
    try:
        yield cache
    finally:
        _LOCAL.cache = previous
