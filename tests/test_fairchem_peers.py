"""fairchem-core peers (eSEN, EScAIP) behind our adapters: faithfulness, symmetry, sizes, fitting."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from matscale.data.batch import collate
from matscale.errors import ConfigError
from matscale.models import build, count_parameters, sizes
from matscale.models.graph import Graph
from matscale.models.symmetry import random_rotations, rotate_batch

torch.set_num_threads(1)  # 2 shared cores


def _close(a, b, rtol):
    scale = b.abs().max().clamp_min(1e-12)
    assert (a - b).abs().max() <= rtol * scale, float((a - b).abs().max() / scale)


@pytest.fixture(scope="module")
def batch(gm_structures):
    return collate(gm_structures, labels=False)


def test_esen_adapter_matches_fairchem_own_graph(batch):
    """Our AtomicData (our edges, cell offsets, direction convention) = fairchem's on-the-fly graph."""
    from matscale.models.fairchem_peers import _atomic_data

    torch.manual_seed(0)
    model = build("esen", "xs")
    with torch.no_grad():
        ours = model.compute(batch)["energy"]
        empty = Graph(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
        data = _atomic_data(batch, empty)
        model.backbone.otf_graph, model.backbone.max_neighbors = True, 100_000
        theirs = model.energy_head(data, model.backbone(data))["energy"]
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=1e-5, atol=1e-5)


def test_escaip_input_matches_fairchem_preprocessing(batch):
    """Our GraphAttentionData = fairchem's own biknn preprocessing when its kNN does not truncate."""
    from fairchem.core.datasets.atomic_data import AtomicData

    torch.manual_seed(0)
    model = build("escaip", "xs")
    n, B = batch.num_atoms, batch.num_structures
    data = AtomicData(
        pos=batch.positions.clone(), atomic_numbers=batch.numbers, cell=batch.cell, pbc=batch.pbc,
        natoms=batch.natoms, edge_index=torch.zeros(2, 0, dtype=torch.long), cell_offsets=torch.zeros(0, 3),
        nedges=torch.zeros(B, dtype=torch.long), charge=torch.zeros(B, dtype=torch.long),
        spin=torch.zeros(B, dtype=torch.long), fixed=torch.zeros(n, dtype=torch.long),
        tags=torch.zeros(n, dtype=torch.long), batch=batch.batch, sid=batch.sid)
    cfg = model.backbone.molecular_graph_cfg
    cfg.knn_k = cfg.knn_pad_size = 500
    with torch.no_grad():
        ours = model.compute(batch)["energy"]
        theirs = model.energy_head(data, model.backbone(data))["energy"]
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch,kwargs", [("esen", {}), ("esen", {"direct": True, "lmax": 2}), ("escaip", {})])
def test_rotation_translation_permutation(arch, kwargs, gm_structures, batch):
    torch.manual_seed(0)
    model = build(arch, "xs", **kwargs).eval()
    ref = model(batch)
    assert ref["forces"].abs().max() > 1e-4 and ref["stress"].abs().max() > 1e-6
    R = random_rotations(batch.num_structures, torch.Generator().manual_seed(0)).float()
    out = model(rotate_batch(batch, R))
    _close(out["energy"], ref["energy"], 1e-5)
    _close(out["forces"], torch.einsum("nij,nj->ni", R[batch.batch], ref["forces"]), 1e-4)
    _close(out["stress"], R @ ref["stress"] @ R.transpose(1, 2), 1e-4)
    shifted = collate(gm_structures, labels=False)
    shifted.positions = shifted.positions + torch.tensor([1.3, -2.2, 7.9])
    out = model(shifted)
    _close(out["energy"], ref["energy"], 1e-5)
    _close(out["forces"], ref["forces"], 1e-4)
    perms = [np.random.default_rng(2).permutation(len(a)) for a in gm_structures]
    out = model(collate([a[p] for a, p in zip(gm_structures, perms)], labels=False))
    _close(out["energy"], ref["energy"], 1e-5)
    _close(out["stress"], ref["stress"], 1e-4)
    expected = torch.cat([ref["forces"][lo:lo + len(p)][torch.from_numpy(p)]
                          for lo, p in zip(batch.ptr[:-1].tolist(), perms)])
    _close(out["forces"], expected, 1e-4)


def test_size_ladders_and_options():
    decades = {}
    for arch in ("esen", "escaip"):
        counts = []
        for size in sizes(arch):
            counts.append(count_parameters(build(arch, size)))  # fairchem cannot init on "meta"
        non_emb = [n for _, n in counts]
        assert non_emb == sorted(non_emb) and len(non_emb) >= 5
        assert all(total > n for total, n in counts)  # element embeddings excluded from N
        decades[arch] = np.log10(non_emb[-1] / non_emb[0])
    assert decades["esen"] >= 3 and decades["escaip"] >= 3, decades
    with pytest.raises(ConfigError, match="max_neighbors"):
        build("esen", "xs", max_neighbors=20)  # conservative + truncated graph: refused
    with pytest.raises(ConfigError, match="lmax"):
        build("esen", "xs", direct=True)  # direct stress needs l = 2
    with pytest.raises(ConfigError, match="divisible"):
        build("escaip", "xs", num_heads=3)


def test_flop_counter_mode_counts_forward_and_double_backward(batch):
    """FlopCounterMode works through fairchem's modules (forward + force/stress + parameter grads)."""
    flops = {}
    for arch in ("esen", "escaip"):
        torch.manual_seed(0)
        model = build(arch, "xs").train()
        with FlopCounterMode(display=False) as counter:
            out = model(batch)
            (out["energy"].sum() + out["forces"].square().sum() + out["stress"].square().sum()).backward()
        flops[arch] = counter.get_total_flops()
        with FlopCounterMode(display=False) as fwd_only, torch.no_grad():
            model.eval()(batch)
        assert 0 < fwd_only.get_total_flops() < flops[arch]
    assert min(flops.values()) > 1e6, flops


@pytest.mark.parametrize("arch", ["esen", "escaip"])
def test_overfits_a_handful_of_structures(arch, gm_structures, gm_overfit):
    torch.manual_seed(0)
    losses = gm_overfit(build(arch, "xs"), gm_structures, steps=50, lr=3e-3)
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])
