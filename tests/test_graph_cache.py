"""The per-structure radius-graph cache: same graphs, bounded memory, bit-identical training."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from matscale import models
from matscale.config import TrainConfig
from matscale.data.batch import collate
from matscale.errors import ConfigError
from matscale.models import graph_cache
from matscale.models.graph import radius_graph
from matscale.models.graph_cache import GraphCache
from matscale.train.loop import train

torch.set_num_threads(1)


def _same_graph(a, b) -> None:
    assert torch.equal(a.edge_index, b.edge_index)
    assert torch.equal(a.shift, b.shift) and a.shift.dtype == b.shift.dtype
    assert torch.equal(a.edge_batch, b.edge_batch)


@pytest.mark.parametrize("max_neighbors", [None, 6])
def test_cached_graph_equals_fresh_graph_and_hits(emt_structures, max_neighbors):
    batches = [collate(emt_structures[i:i + 8]) for i in (0, 8, 4)]  # the third batch overlaps both
    cache = GraphCache(2**20)
    with graph_cache.use(cache):
        cached = [radius_graph(b, 4.0, max_neighbors) for b in batches]
        again = [radius_graph(b, 4.0, max_neighbors) for b in batches]
    assert graph_cache.active() is None  # restored outside the block
    for b, c, d in zip(batches, cached, again):
        fresh = radius_graph(b, 4.0, max_neighbors)
        _same_graph(fresh, c)
        _same_graph(fresh, d)
    assert cache.stats.misses == 16 and cache.stats.hits == 8 + 24
    # another cutoff, a moved atom or a rotated cell is another key, never a stale graph
    with graph_cache.use(cache):
        radius_graph(batches[0], 3.0, max_neighbors)
        moved = collate(emt_structures[:8])
        moved.positions[0, 0] += 0.5
        _same_graph(radius_graph(moved, 4.0, max_neighbors), _fresh(moved, 4.0, max_neighbors))
    assert cache.stats.misses == 16 + 8 + 1


def _fresh(batch, cutoff, max_neighbors):
    with graph_cache.use(None):
        return radius_graph(batch, cutoff, max_neighbors)


def test_cache_respects_its_memory_bound(emt_structures):
    batch = collate(emt_structures[:16])
    small = GraphCache(3000)
    with graph_cache.use(small):
        radius_graph(batch, 4.0)
    assert 0 < len(small) < 16 and small.nbytes <= 3000 and small.stats.evictions > 0
    assert GraphCache.from_mb(0) is None
    with pytest.raises(ConfigError, match="graph_cache_mb"):
        TrainConfig(graph_cache_mb=-1, device="cpu").validate()


def test_cache_is_not_in_the_run_id_and_compile_only_when_on():
    base = TrainConfig(device="cpu")
    assert base.replace(graph_cache_mb=0).run_id() == base.run_id()
    assert "compile" not in base.result_settings()
    assert base.replace(compile=True).run_id() != base.run_id()


@pytest.mark.parametrize("arch,size", [("schnet", "xs"), ("equiformer_v2", "xxxs")])
def test_training_is_bit_identical_with_cache_on_and_off(tmp_path, emt_structures, emt_val_structures, arch, size):
    data, val = emt_structures[:16], emt_val_structures[:6]
    # warm up process-wide lazy tables (EquiformerV2's first call in a process counts ~1e-5 more
    # FLOPs while it fills them), so both runs below start from the same process state
    models.build(arch, size)(collate(data[:2]))
    runs = {}
    for mb in (0, 64):
        cfg = TrainConfig(arch=arch, size=size, epochs=2, batch_size=8, lr=3e-3, device="cpu",
                          graph_cache_mb=mb, run_root=str(tmp_path / f"mb{mb}"))
        r = train(cfg, train_set=data, val_set=val, quiet=True)
        assert r.status == "completed"
        state = torch.load(r.run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
        runs[mb] = (r.metrics, state)
    (m0, w0), (m1, w1) = runs[0], runs[64]
    cols = [c for c in m0.columns if c != "wall_s"]
    pd.testing.assert_frame_equal(m0[cols], m1[cols], check_exact=True)
    assert w0.keys() == w1.keys()
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    assert np.isfinite(m0["val_loss"]).all()
