"""Packed attention: no leakage between structures, modes agree, plans cover every token once."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from matscale.data.batch import collate
from matscale.models import build, predict
from matscale.models.packing import MODES, packed_attention, plan


@pytest.fixture(scope="module")
def structures(mixed_emt_structures):
    return mixed_emt_structures


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("mode", MODES)
def test_perturbing_one_structure_leaves_the_others_unchanged(mode, structures):
    torch.manual_seed(0)
    model = build("transformer", "s", packing=mode)
    base = predict(model, structures, batch_size=len(structures))
    changed = [a.copy() for a in structures]
    victim = 3
    changed[victim].positions[:2] += 0.3
    changed[victim].numbers[0] = 78
    changed[victim].set_cell(changed[victim].cell[:] * 1.05, scale_atoms=True)
    out = predict(model, changed, batch_size=len(changed))
    offsets = np.cumsum([0] + [len(a) for a in structures])
    for i in range(len(structures)):
        lo, hi = offsets[i], offsets[i + 1]
        same = [np.allclose(out["energy"][i], base["energy"][i], atol=1e-6),
                np.allclose(out["forces"][lo:hi], base["forces"][lo:hi], atol=1e-6),
                np.allclose(out["stress"][i], base["stress"][i], atol=1e-7)]
        assert same == ([False] * 3 if i == victim else [True] * 3), (i, same)


def test_all_packing_modes_give_the_same_outputs(structures):
    outs = {}
    for mode in MODES:
        torch.manual_seed(0)
        outs[mode] = predict(build("transformer", "s", packing=mode), structures, batch_size=len(structures))
    for mode in MODES[1:]:
        for key in ("energy", "forces", "stress"):
            np.testing.assert_allclose(outs[mode][key], outs["bucket"][key], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_packed_attention_matches_per_sequence_attention(mode):
    torch.manual_seed(0)
    lengths = [1, 5, 3, 12, 4, 4, 9]
    # tokens interleaved between sequences: the plan must not assume contiguity
    sequence = torch.tensor(sum(([s] * n for s, n in enumerate(lengths)), []))[torch.randperm(sum(lengths))]
    qkv = torch.randn(len(sequence), 3, 2, 4)
    out = packed_attention(qkv, plan(sequence, len(lengths), mode, bucket_ratio=1.5))
    for s in range(len(lengths)):
        rows = (sequence == s).nonzero().squeeze(1)
        q, k, v = qkv[rows].permute(1, 2, 0, 3)  # (H, n, Dh)
        expected = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1) @ v
        torch.testing.assert_close(out[rows], expected.transpose(0, 1), rtol=1e-5, atol=1e-6)


def test_bucket_plan_groups_similar_lengths_and_covers_each_token_once():
    lengths = [3, 40, 4, 10, 11, 100, 5, 12]
    sequence = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    p = plan(sequence, len(lengths), "bucket", bucket_ratio=1.5)
    seen = []
    for index, key_mask, flat_valid in p.groups:
        group_lengths = [lengths[int(sequence[row[0]])] for row in index]
        assert max(group_lengths) <= 1.5 * min(group_lengths)
        assert index.shape[1] == max(group_lengths)  # padded only to the group's own maximum
        rows = index.reshape(-1) if flat_valid is None else index.reshape(-1)[flat_valid]
        seen.append(rows)
    seen = torch.cat(seen)
    assert sorted(seen.tolist()) == list(range(len(sequence)))
    assert torch.equal(seen[p.inverse], torch.arange(len(sequence)))
    padded_rows = sum(idx.numel() for idx, _, _ in p.groups)
    assert padded_rows < 1.3 * len(sequence) < len(lengths) * max(lengths)


def test_plan_rejects_unknown_mode_and_empty_sequences():
    with pytest.raises(ValueError, match="unknown packing mode"):
        plan(torch.zeros(3, dtype=torch.long), 1, "ragged")
    with pytest.raises(ValueError, match="at least one token"):
        plan(torch.zeros(3, dtype=torch.long), 2, "bucket")


def test_gradients_do_not_cross_structures(structures):
    """d(output of structure i)/d(positions of structure j) is exactly zero for i != j."""
    torch.manual_seed(0)
    model = build("transformer", "xs")
    batch = collate(structures[:3])
    batch.positions.requires_grad_(True)
    out = model(batch)
    grad, = torch.autograd.grad(out["energy"][1], batch.positions)
    owner = batch.batch
    assert grad[owner == 1].abs().sum() > 0
    assert grad[owner != 1].abs().sum() == 0
