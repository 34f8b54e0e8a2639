"""EquiformerV2: Wigner-D and grid units, equivariance/invariance end to end, smooth cutoff,
registry sizes, the OMat24 S configuration, and a small overfit."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from matscale.data.batch import collate
from matscale.errors import ConfigError, DataError
from matscale.models import build, count_parameters, predict, sizes
from matscale.models.equiformer_v2 import EquiformerV2
from matscale.models.equiformer_v2.activation import SeparableS2Activation, grid_matrices
from matscale.models.equiformer_v2.attention import edge_softmax
from matscale.models.equiformer_v2.norm import LayerNormSH, RMSNormSH
from matscale.models.equiformer_v2.so2 import SO2Convolution
from matscale.models.equiformer_v2.so3 import (Layout, edge_angles, rotation_y_blocks, wigner_blocks,
                                                wigner_from_harmonics)

torch.set_num_threads(1)
F64 = torch.float64

TINY = dict(num_layers=1, sphere_channels=8, attn_hidden_channels=8, num_heads=2, attn_alpha_channels=4,
            attn_value_channels=4, ffn_hidden_channels=8, edge_channels=8, lmax=2, mmax=1,
            num_distance_basis=16, cutoff=4.5, max_neighbors=None)


def tiny_model(dtype=torch.float32, seed=0, **kw) -> EquiformerV2:
    torch.manual_seed(seed)
    return EquiformerV2(**{**TINY, **kw}).to(dtype).eval()


def random_rotation(seed: int, dtype=F64) -> torch.Tensor:
    from e3nn import o3

    torch.manual_seed(seed)
    return o3.rand_matrix(dtype=dtype)


def full_wigner(Q: torch.Tensor, lmax: int) -> torch.Tensor:
    """Block-diagonal D(Q) for degrees 0..lmax (float64)."""
    return torch.block_diag(*[wigner_from_harmonics(l, Q) for l in range(lmax + 1)])


def triclinic(n: int, seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    cell = np.diag([3.6, 3.9, 4.2]) + rng.normal(0.0, 0.4, (3, 3))
    return Atoms(numbers=rng.choice([13, 29, 47], n), scaled_positions=rng.random((n, 3)), cell=cell, pbc=True)


@pytest.fixture(scope="module")
def structures():
    return [triclinic(4, 1), triclinic(3, 2)]


def rotate(batch, Q):
    Q = Q.to(batch.positions.dtype)
    return replace(batch, positions=batch.positions @ Q.T, cell=batch.cell @ Q.T)


def run(model, batch):
    with torch.no_grad():
        return model(batch)


def rel(a, b):
    return float(((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).detach())


# ---- units: rotations, grids, layers ------------------------------------------------------------

def test_edge_wigner_matches_e3nn_and_aligns_edges():
    from e3nn import o3

    torch.manual_seed(0)
    unit = torch.randn(64, 3, dtype=F64)
    unit = torch.cat([unit / unit.norm(dim=-1, keepdim=True),
                      torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]], dtype=F64)])
    blocks = wigner_blocks(4, *edge_angles(unit))
    R = blocks[1]  # D¹(R) = R in e3nn's (x, y, z) basis
    assert torch.allclose(R @ unit[:, :, None], torch.tensor([0.0, 1.0, 0.0], dtype=F64)[:, None].expand(len(unit), 3, 1),
                          atol=1e-12)
    angles = o3.matrix_to_angles(R)
    for l, D in enumerate(blocks):
        eye = torch.eye(2 * l + 1, dtype=F64)
        assert torch.allclose(D @ D.transpose(1, 2), eye.expand_as(D), atol=1e-12)
        # e3nn's wigner_D carries float32 constants (~1e-6 errors); ours is exact in float64
        assert torch.allclose(D, o3.wigner_D(l, *angles), atol=1e-5)
        # D(R_e) Y(r̂_e) = √(2l+1) e_{l,0}: the edge points along +y in its frame
        Y = o3.spherical_harmonics(l, unit, normalize=True, normalization="component")
        target = torch.zeros(2 * l + 1, dtype=F64)
        target[l] = math.sqrt(2 * l + 1)
        assert torch.allclose(torch.einsum("eij,ej->ei", D, Y), target.expand(len(unit), -1), atol=1e-12)


def test_wigner_from_harmonics_is_a_representation():
    from e3nn import o3

    Q1, Q2 = random_rotation(1), random_rotation(2)
    r = torch.randn(10, 3, dtype=F64)
    for l in range(5):
        D1, D2 = wigner_from_harmonics(l, Q1), wigner_from_harmonics(l, Q2)
        assert torch.allclose(wigner_from_harmonics(l, Q1 @ Q2), D1 @ D2, atol=1e-12)
        Y = o3.spherical_harmonics(l, r, normalize=True)
        assert torch.allclose(o3.spherical_harmonics(l, r @ Q1.T, normalize=True), Y @ D1.T, atol=1e-12)
    assert torch.allclose(wigner_from_harmonics(1, Q1), Q1, atol=1e-13)


def test_edge_frame_is_accurate_near_the_poles_in_float32():
    from e3nn import o3

    eps = torch.tensor([0.0, 1e-7, 1e-5, 1e-3, 1e-2])
    unit = torch.cat([torch.stack([eps, torch.ones_like(eps), 0.5 * eps], -1),
                      torch.stack([-eps, -torch.ones_like(eps), 0.3 * eps], -1)])
    unit = unit / unit.norm(dim=-1, keepdim=True)
    blocks = wigner_blocks(6, *edge_angles(unit))
    for l, D in enumerate(blocks):
        Y = o3.spherical_harmonics(l, unit.double(), normalize=True, normalization="component").float()
        y = torch.einsum("eij,ej->ei", D, Y)
        leak = torch.cat([y[:, :l], y[:, l + 1:]], dim=1).abs().max() if l else torch.tensor(0.0)
        # float32 rounding only (arccos for β would leak ~1e-3 at 1e-3 rad from the pole)
        assert leak / math.sqrt(2 * l + 1) < 2e-6, (l, float(leak))


def test_grid_transforms_invert_up_to_lmax():
    for lmax, res in [(2, (6, 5)), (4, (10, 9)), (4, (22, 22))]:
        T, F = grid_matrices(lmax, *res)
        assert torch.allclose(F.T @ T, torch.eye((lmax + 1) ** 2, dtype=F64), atol=1e-12)
    with pytest.raises(ConfigError, match="res_beta"):
        grid_matrices(4, 8, 9)  # R_β < 2(L+1)
    with pytest.raises(ConfigError, match="res_alpha"):
        EquiformerV2(**{**TINY, "attn_grid_resolution": (6, 2)})


def roll_matrix(layout: Layout, theta: float) -> torch.Tensor:
    """Roll about ŷ restricted to the m-truncated coefficients, (N_M, N_M)."""
    D = torch.block_diag(*[rotation_y_blocks(l, torch.tensor([theta], dtype=F64))[0] for l in range(layout.lmax + 1)])
    idx = layout.truncated_index
    return D[idx][:, idx]


def test_so2_convolution_commutes_with_rolls_about_the_edge():
    torch.manual_seed(0)
    layout = Layout(4, 2)
    conv = SO2Convolution(layout, 3, 5, extra=4).double()
    x = torch.randn(7, layout.num_truncated, 3, dtype=F64)
    gate = torch.randn(7, 3 * 12, dtype=F64)  # T = 5 + 4 + 3 = 12 degree slots
    roll = roll_matrix(layout, 0.7)
    y, extra = conv(x, gate)
    y_rolled, extra_rolled = conv(roll @ x, gate)
    assert torch.allclose(y_rolled, roll @ y, atol=1e-12)
    assert torch.allclose(extra_rolled, extra, atol=1e-12)


def test_edge_frame_activation_commutes_with_rolls_at_the_minimal_beta_grid():
    """Only rolls act in the edge frame, so equivariance depends on R_α alone (R_β = 2(L+1))."""
    torch.manual_seed(0)
    layout = Layout(4, 2)
    x = torch.randn(6, layout.num_truncated, 3, dtype=F64)
    gate = torch.randn(6, 3, dtype=F64)
    roll = roll_matrix(layout, 1.1)
    errors = []
    for res_alpha in (8, 16, 48):
        act = SeparableS2Activation(layout, (10, res_alpha), truncated=True)
        errors.append(float((act(gate, roll @ x) - roll @ act(gate, x)).abs().max()))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-9, errors


@pytest.mark.parametrize("norm_cls", [LayerNormSH, RMSNormSH])
def test_equivariant_norms_commute_with_rotations(norm_cls):
    torch.manual_seed(0)
    norm = norm_cls(3, 6).double()
    with torch.no_grad():
        for p in norm.parameters():
            p.uniform_(0.5, 1.5)
    x = torch.randn(5, 16, 6, dtype=F64)
    D = full_wigner(random_rotation(3), 3)
    assert torch.allclose(norm(D @ x), D @ norm(x), atol=1e-12)


def test_edge_softmax_normalises_per_target_with_envelope_weights():
    logits = torch.tensor([[1.0], [2.0], [0.5], [3.0]], dtype=F64)
    target = torch.tensor([0, 0, 1, 0])
    weight = torch.tensor([1.0, 0.5, 1.0, 0.0], dtype=F64)
    a = edge_softmax(logits, target, 2, weight)[:, 0]
    z = math.exp(1.0) + 0.5 * math.exp(2.0)
    assert torch.allclose(a, torch.tensor([math.exp(1.0) / z, 0.5 * math.exp(2.0) / z, 1.0, 0.0], dtype=F64))


# ---- end to end symmetry ------------------------------------------------------------------------

def test_rotation_equivariance_float64_is_exact_with_fine_grids(structures):
    model = tiny_model(F64, num_layers=2, ffn_grid_resolution=30, attn_grid_resolution=(6, 16))
    batch = collate(structures, dtype=F64)
    out = run(model, batch)
    for seed in range(3):
        Q = random_rotation(10 + seed)
        rot = run(model, rotate(batch, Q))
        assert rel(rot["energy"], out["energy"]) < 1e-10
        assert rel(rot["forces"], out["forces"] @ Q.T) < 1e-8
        assert rel(rot["stress"], Q @ out["stress"] @ Q.T) < 1e-8
    assert torch.allclose(out["stress"], out["stress"].transpose(1, 2), atol=1e-14)


def test_rotation_equivariance_float32_default_grids(structures):
    model = tiny_model(torch.float32, num_layers=2)
    batch = collate(structures)
    out = run(model, batch)
    Q = random_rotation(7)
    rot = run(model, rotate(batch, Q))
    Qf = Q.float()
    assert rel(rot["energy"], out["energy"]) < 1e-5
    assert rel(rot["forces"], out["forces"] @ Qf.T) < 2e-4
    assert rel(rot["stress"], Qf @ out["stress"] @ Qf.T) < 2e-4


def test_translation_and_permutation(structures):
    model = tiny_model(F64)
    batch = collate(structures, dtype=F64)
    out = run(model, batch)
    moved = run(model, replace(batch, positions=batch.positions + torch.tensor([0.3, -1.7, 2.2], dtype=F64)))
    for key in out:
        assert torch.allclose(moved[key], out[key], atol=1e-10)
    perm = torch.tensor([2, 0, 3, 1, 6, 4, 5])  # within each structure
    permuted = run(model, replace(batch, positions=batch.positions[perm], numbers=batch.numbers[perm]))
    assert torch.allclose(permuted["energy"], out["energy"], atol=1e-10)
    assert torch.allclose(permuted["forces"], out["forces"][perm], atol=1e-10)
    assert torch.allclose(permuted["stress"], out["stress"], atol=1e-10)


def test_invariant_to_periodic_images_and_cell_choice():
    model = tiny_model(F64)
    a = triclinic(3, 5)
    out = run(model, collate([a], dtype=F64))
    # atoms moved by lattice vectors
    b = a.copy()
    b.positions += np.array([1, -2, 1]) @ a.cell[:] + np.array([[0, 0, 0], [1, 0, 0], [0, 0, -1]]) @ a.cell[:]
    # another unit cell of the same lattice (unimodular integer change of basis), atoms wrapped
    c = a.copy()
    c.set_cell(np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1]]) @ a.cell[:], scale_atoms=False)
    c.wrap()
    for other in (b, c):
        res = run(model, collate([other], dtype=F64))
        for key in out:
            assert torch.allclose(res[key], out[key], atol=1e-10), key
    # a 2×1×1 supercell: twice the energy, the same forces on each copy, the same stress
    sup = run(model, collate([a.repeat((2, 1, 1))], dtype=F64))
    assert torch.allclose(sup["energy"], 2 * out["energy"], atol=1e-10)
    assert torch.allclose(sup["forces"], out["forces"].repeat(2, 1), atol=1e-10)
    assert torch.allclose(sup["stress"], out["stress"], atol=1e-10)


def test_predictions_are_continuous_across_the_cutoff():
    model = tiny_model(F64, cutoff=4.0, envelope_width=1.0)

    def dimer(d):
        atoms = Atoms("CuAl", positions=[[5, 5, 5], [5 + d, 5.0, 5]], cell=[20, 20, 20], pbc=True)
        return run(model, collate([atoms], dtype=F64))

    inside, outside, far = dimer(4.0 - 1e-6), dimer(4.0 + 1e-6), dimer(6.0)
    for key in inside:
        assert torch.allclose(inside[key], outside[key], atol=1e-9), key
        assert torch.allclose(outside[key], far[key], atol=1e-12), key
    assert float(outside["forces"].abs().max()) < 1e-12  # isolated atoms: no edges, no force


def test_eval_is_deterministic_and_training_mode_runs(structures):
    model = tiny_model(torch.float32, alpha_drop=0.1, drop_path=0.1)
    batch = collate(structures)
    a, b = run(model, batch), run(model, batch)
    assert all(torch.equal(a[k], b[k]) for k in a)
    numpy_out = predict(model, structures)  # the registry's ASE-facing path (eV, eV/Å, eV/Å³)
    assert np.allclose(numpy_out["forces"], a["forces"].numpy(), atol=1e-6)
    model.train()
    out = model(batch)
    (out["energy"].sum() + out["forces"].sum() + out["stress"].sum()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_runs_under_bf16_autocast(structures):
    model = tiny_model(torch.float32)
    batch = collate(structures)
    ref = run(model, batch)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
    (out["energy"].float().sum() + out["forces"].float().pow(2).sum() + out["stress"].float().sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert rel(out["forces"].float(), ref["forces"]) < 0.1


# ---- registry, sizes, OMat24 configuration, errors ---------------------------------------------

def backbone_count(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] in ("embedding", "blocks", "norm"))


def test_size_ladder_spans_three_decades_and_omat24_backbones_match_the_reference():
    counts = {}
    for name in sizes("equiformer_v2"):
        with torch.device("meta"):  # as `python -m matscale models` counts them: no memory
            model = build("equiformer_v2", name)
        counts[name] = (count_parameters(model)[1], backbone_count(model))
    ladder = [counts[n][0] for n in counts if not n.startswith("omat24")]
    assert len(ladder) >= 5 and ladder == sorted(ladder)
    assert ladder[0] < 2e4 and ladder[-1] > 1e7 and ladder[-1] / ladder[0] > 1e3
    # fairchem eqV2 S/M/L backbones (31,207,434 / 86,589,068 / 153,769,868 with the reference heads)
    assert counts["omat24_s"][1] == 27_795_584
    assert counts["omat24_m"][1] == 78_831_232
    assert counts["omat24_l"][1] == 146_553_472
    torch.manual_seed(0)
    assert count_parameters(build("equiformer_v2", "xs"))[1] == counts["xs"][0]  # real build after meta


@pytest.fixture(scope="module")
def omat24_s():
    torch.manual_seed(0)
    return build("equiformer_v2", "omat24_s").eval()


def test_omat24_s_configuration(omat24_s):
    assert omat24_s.cutoff == 12.0 and omat24_s.max_neighbors == 20
    assert omat24_s.layout.lmax == 4 and omat24_s.layout.mmax == 2 and len(omat24_s.blocks) == 8


def test_omat24_s_forward_on_a_tiny_structure(omat24_s):
    atoms = bulk("Cu", "fcc", a=3.6)  # one atom; 12 Å cutoff, 20 neighbours (+ ties)
    atoms.rattle(0.0)
    out = run(omat24_s, collate([atoms]))
    assert out["energy"].shape == (1,) and out["forces"].shape == (1, 3) and out["stress"].shape == (1, 3, 3)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_bad_inputs_raise_clear_errors():
    model = tiny_model(max_num_elements=30)
    with pytest.raises(DataError, match="max_num_elements"):
        model.compute(collate([Atoms("Ag", cell=[5, 5, 5], pbc=True)]))
    with pytest.raises(ConfigError, match="lmax"):
        EquiformerV2(**{**TINY, "lmax": 1})
    with pytest.raises(ConfigError, match="envelope_width"):
        EquiformerV2(**{**TINY, "envelope_width": 9.0})


# ---- learning -----------------------------------------------------------------------------------

def test_small_model_overfits_a_few_emt_structures():
    structs = []
    rng = np.random.default_rng(0)
    for i, sym in enumerate(["Cu", "Al", "Cu", "Ni"]):
        a = bulk(sym, "fcc", cubic=True)
        a.set_cell(a.cell[:] @ (np.eye(3) + 0.03 * rng.standard_normal((3, 3))), scale_atoms=True)
        a.positions += 0.1 * rng.standard_normal(a.positions.shape)
        a.calc = EMT()
        a.get_potential_energy(), a.get_stress()
        structs.append(a)
    batch = collate(structs)
    model = tiny_model(cutoff=4.0)
    model.train()
    e_per_atom = batch.energy / batch.natoms
    model.set_normalization(torch.zeros(119), 1.0, float(batch.forces.std()), float(batch.stress.std()))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss_fn():
        out = model(batch)
        e = ((out["energy"] / batch.natoms - e_per_atom) ** 2).mean() / e_per_atom.var()
        f = ((out["forces"] - batch.forces) ** 2).mean() / batch.forces.var()
        s = ((out["stress"] - batch.stress) ** 2).mean() / batch.stress.var()
        return e + f + s

    first = float(loss_fn().detach())
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert float(loss_fn().detach()) < 0.1 * first
