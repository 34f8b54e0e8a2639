"""SchNet: physics (symmetries, conservative forces/stress vs finite differences), sizes, fitting."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms

from matscale.data.batch import collate
from matscale.models import build, count_parameters, predict, sizes
from matscale.models.symmetry import random_rotations, rotate_batch

torch.set_num_threads(1)  # 2 shared cores


@pytest.fixture(scope="module")
def schnet():
    torch.manual_seed(0)
    model = build("schnet", "xs")
    # non-trivial normalisation so that the base's scaling is exercised too
    ref = torch.zeros(119)
    ref[[13, 28, 29, 47, 79]] = torch.tensor([-3.0, -5.0, -4.0, -2.5, -3.2])
    model.set_normalization(ref, 2.0, 0.5, 0.01)
    return model.eval()


def _close(a, b, rtol=1e-5, scale=None):
    scale = scale if scale is not None else b.abs().max().clamp_min(1e-12)
    assert (a - b).abs().max() <= rtol * scale, float((a - b).abs().max() / scale)


def test_rotation_translation_permutation(schnet, gm_structures):
    batch = collate(gm_structures, labels=False)
    ref = schnet(batch)
    assert ref["forces"].abs().max() > 1e-3 and ref["stress"].abs().max() > 1e-5  # not trivially zero
    R = random_rotations(batch.num_structures, torch.Generator().manual_seed(0)).float()
    rot = schnet(rotate_batch(batch, R))
    _close(rot["energy"], ref["energy"], 1e-6)
    _close(rot["forces"], torch.einsum("nij,nj->ni", R[batch.batch], ref["forces"]), 1e-4)
    _close(rot["stress"], R @ ref["stress"] @ R.transpose(1, 2), 1e-4)
    # translation by an arbitrary vector (atoms leave the cell: the graph is periodic anyway)
    shifted = collate(gm_structures, labels=False)
    shifted.positions = shifted.positions + torch.tensor([0.7, -3.1, 12.4])
    out = schnet(shifted)
    _close(out["energy"], ref["energy"], 1e-6)
    _close(out["forces"], ref["forces"], 1e-4)
    _close(out["stress"], ref["stress"], 1e-4)
    # permuting the atoms of each structure permutes the forces only
    rng = np.random.default_rng(1)
    perms = [rng.permutation(len(a)) for a in gm_structures]
    out = schnet(collate([a[p] for a, p in zip(gm_structures, perms)], labels=False))
    _close(out["energy"], ref["energy"], 1e-6)
    _close(out["stress"], ref["stress"], 1e-4)
    expected = torch.cat([ref["forces"][lo:lo + len(p)][torch.from_numpy(p)]
                          for lo, p in zip(batch.ptr[:-1].tolist(), perms)])
    _close(out["forces"], expected, 1e-4)


def test_forces_and_stress_match_finite_differences(gm_structures):
    torch.manual_seed(1)
    model = build("schnet", "xs").double().eval()
    atoms = gm_structures[0]  # 8 atoms, strained triclinic, with an Au impurity
    batch = collate([atoms], labels=False, dtype=torch.float64)
    out = model(batch)

    def energy(positions, cell):
        b = collate([atoms], labels=False, dtype=torch.float64)
        b.positions, b.cell = positions, cell[None]
        with torch.no_grad():
            return float(model.compute(b)["energy"][0]) * float(model.energy_scale)

    h = 1e-5
    pos0, cell0 = batch.positions.clone(), batch.cell[0].clone()
    for atom, axis in [(0, 0), (3, 1), (7, 2), (5, 0)]:
        dp = torch.zeros_like(pos0)
        dp[atom, axis] = h
        fd = -(energy(pos0 + dp, cell0) - energy(pos0 - dp, cell0)) / (2 * h)
        assert math.isclose(fd, float(out["forces"][atom, axis]), rel_tol=1e-6, abs_tol=1e-9)
    volume = abs(float(torch.linalg.det(cell0)))
    for a, b in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]:
        eps = torch.zeros(3, 3, dtype=torch.float64)
        eps[a, b] += 0.5
        eps[b, a] += 0.5  # symmetric unit strain in the (a, b) component
        plus, minus = torch.eye(3, dtype=torch.float64) + h * eps, torch.eye(3, dtype=torch.float64) - h * eps
        fd = (energy(pos0 @ plus, cell0 @ plus) - energy(pos0 @ minus, cell0 @ minus)) / (2 * h) / volume
        assert math.isclose(fd, float(out["stress"][0, a, b]), rel_tol=1e-5, abs_tol=1e-10)


def test_energy_is_smooth_at_the_cutoff():
    """A dimer in a large box: energy and force go continuously to their isolated values at r_c."""
    torch.manual_seed(0)
    model = build("schnet", "xs", cutoff=4.0).double().eval()

    def dimer(r):
        atoms = Atoms("CuAl", positions=[[5, 5, 5], [5 + r, 5, 5]], cell=[15, 15, 15], pbc=True)
        out = model(collate([atoms], labels=False, dtype=torch.float64))
        return float(out["energy"][0].detach()), float(out["forces"][1, 0])

    e_in, f_in = dimer(4.0 - 1e-4)
    e_out, f_out = dimer(4.0 + 1e-4)
    assert f_out == 0.0
    assert abs(e_in - e_out) < 1e-7 and abs(f_in) < 1e-4
    assert abs(dimer(3.0)[0] - e_out) > 1e-4  # but it does interact inside the cutoff


def test_size_ladder_spans_three_decades():
    counts = []
    for size in sizes("schnet"):
        counts.append(count_parameters(build("schnet", size)))
    non_emb = [n for _, n in counts]
    assert non_emb == sorted(non_emb) and len(non_emb) >= 5
    assert non_emb[0] <= 2e4 and non_emb[-1] >= 1e7
    assert all(total > n for total, n in counts)  # the element embedding is excluded from N


def test_predict_and_no_grad_give_detached_consistent_outputs(schnet, gm_structures):
    with torch.no_grad():  # e.g. a validation loop: the conservative path still works
        out = schnet(collate(gm_structures, labels=False))
    assert not out["forces"].requires_grad
    pred = predict(schnet, gm_structures, batch_size=2)
    np.testing.assert_allclose(pred["forces"], out["forces"].double().numpy(), atol=1e-5)
    assert pred["energy"].shape == (5,) and pred["stress"].shape == (5, 3, 3)


def test_overfits_a_handful_of_structures(gm_structures, gm_overfit):
    torch.manual_seed(0)
    losses = gm_overfit(build("schnet", "xs"), gm_structures, steps=80, lr=3e-3)
    assert losses[-1] < losses[0] / 20, (losses[0], losses[-1])


def test_runs_under_bf16_autocast(schnet, gm_structures):
    batch = collate(gm_structures, labels=False)
    ref = schnet(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = schnet(batch)
    assert torch.isfinite(out["forces"]).all() and torch.isfinite(out["stress"]).all()
    _close(out["energy"], ref["energy"], 5e-2)
