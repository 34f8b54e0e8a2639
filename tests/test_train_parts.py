"""Loss, schedule, normalisation and FLOP counting, each against an independent computation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from matscale.config import TrainConfig
from matscale.data.batch import collate
from matscale.train.flops import FlopModel, count_step_flops, fit_flop_model, representative_batches
from matscale.train.loss import LossMeter, LossScales, LossWeights, errors, loss
from matscale.train.normalization import fit_normalization
from matscale.train.schedule import WarmupCosine, make_scheduler

torch.set_num_threads(1)


def _fake(structures, rng):
    """Random predictions with the right shapes for a labelled batch."""
    b = collate(structures, labels=True, dtype=torch.float64)
    pred = {"energy": b.energy + torch.from_numpy(rng.normal(0, 0.5, b.num_structures)),
            "forces": b.forces + torch.from_numpy(rng.normal(0, 0.3, (b.num_atoms, 3))),
            "stress": b.stress + torch.from_numpy(rng.normal(0, 0.01, (b.num_structures, 3, 3)))}
    return b, pred


def test_loss_components_match_a_numpy_reference(emt_structures):
    rng = np.random.default_rng(0)
    batch, pred = _fake(emt_structures[:6], rng)
    w, s = LossWeights(2.5, 20.0, 5.0, 5.0), LossScales(0.1, 0.5, 0.02)
    total, err = loss(pred, batch, w, s)
    n = batch.natoms.numpy()
    de = (pred["energy"] - batch.energy).numpy() / n
    df = (pred["forces"] - batch.forces).numpy()
    ds = (pred["stress"] - batch.stress).numpy()
    iso = np.trace(ds, axis1=1, axis2=2) / 3
    dev = ds - iso[:, None, None] * np.eye(3)
    expected = (2.5 * np.abs(de).mean() / 0.1 + 20 * np.linalg.norm(df, axis=1).mean() / 0.5
                + 5 * np.abs(iso).mean() / 0.02 + 5 * np.abs(dev).mean(axis=(1, 2)).mean() / 0.02)
    assert float(total) == pytest.approx(expected, rel=1e-10)
    meter = LossMeter(w, s)
    meter.add(err, batch.num_structures, batch.num_atoms)
    r = meter.result("val")
    assert r["val_loss"] == pytest.approx(expected, rel=1e-10)
    assert r["val_energy_mae_eV_atom"] == pytest.approx(np.abs(de).mean())
    assert r["val_force_mae_eV_A"] == pytest.approx(np.abs(df).mean())
    assert r["val_stress_mae_eV_A3"] == pytest.approx(np.abs(ds).mean())
    assert sum(r[f"val_loss_{c}"] for c in ("energy", "force", "stress_iso", "stress_aniso")) == pytest.approx(expected)


def test_global_denominators_make_shard_losses_add_up(emt_structures):
    """Shards with different atom counts: Σ shard losses (global counts) = full-batch loss."""
    rng = np.random.default_rng(1)
    structures = emt_structures[:7]
    batch, pred = _fake(structures, rng)
    w, s = LossWeights.from_config(TrainConfig()), LossScales(0.2, 0.7, 0.03)
    full, _ = loss(pred, batch, w, s)
    parts = 0.0
    ptr = batch.ptr.tolist()
    for lo, hi in ((0, 3), (3, 7)):
        sub = collate(structures[lo:hi], labels=True, dtype=torch.float64)
        sub_pred = {"energy": pred["energy"][lo:hi], "forces": pred["forces"][ptr[lo]:ptr[hi]],
                    "stress": pred["stress"][lo:hi]}
        parts += float(loss(sub_pred, sub, w, s, n_structures=batch.num_structures, n_atoms=batch.num_atoms)[0])
    assert parts == pytest.approx(float(full), rel=1e-12)


def test_force_norm_gradient_is_finite_at_zero_error(emt_structures):
    b = collate(emt_structures[:2], labels=True, dtype=torch.float64)
    forces = b.forces.clone().requires_grad_(True)
    total, _ = loss({"energy": b.energy, "forces": forces, "stress": b.stress}, b, LossWeights.from_config(TrainConfig()), LossScales())
    total.backward()
    assert torch.isfinite(forces.grad).all()


def test_schedule_warmup_then_cosine_to_min():
    f = WarmupCosine(total_steps=1000, warmup_frac=0.01, warmup_start=0.2, min_lr_factor=0.01)
    assert f(0) == pytest.approx(0.2)
    assert f(5) == pytest.approx(0.6)
    assert f(10) == pytest.approx(1.0)
    assert f(999) == pytest.approx(0.01)
    mid = 10 + (999 - 10) / 2
    assert f(int(mid)) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (int(mid) - 10) / 989)))
    values = [f(s) for s in range(10, 1000)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    # LambdaLR applies it per optimiser step
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-3)
    sched = make_scheduler(opt, 100, TrainConfig(warmup_frac=0.1, warmup_start=0.2, min_lr_factor=0.01))
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(2e-4) and lrs[10] == pytest.approx(1e-3) and lrs[99] == pytest.approx(1e-5)
    # no warm-up at all
    assert WarmupCosine(10, 0.0, 0.2, 0.0)(0) == 1.0 and WarmupCosine(10, 0.0, 0.2, 0.0)(9) == pytest.approx(0.0)


def test_normalization_recovers_element_energies_and_scales():
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(0)
    true = {13: -3.5, 29: -4.1, 47: -2.9}
    structures = []
    for _ in range(60):
        n = int(rng.integers(2, 9))
        numbers = rng.choice(list(true), size=n)
        a = Atoms(numbers=numbers, positions=rng.random((n, 3)) * 4, cell=np.eye(3) * 4, pbc=True)
        e = sum(true[z] for z in numbers) + n * 0.05 * rng.standard_normal()
        f = rng.normal(0, 0.7, (n, 3))
        s = rng.normal(0, 0.01, 6)
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        structures.append(a)
    norm = fit_normalization(structures)
    for z, e in true.items():
        assert norm.energy_ref[z] == pytest.approx(e, abs=0.05)
    assert norm.energy_ref[1] == 0.0
    assert norm.energy_scale == pytest.approx(0.05, rel=0.3)
    assert norm.force_scale == pytest.approx(0.7, rel=0.1)
    assert 0.005 < norm.stress_scale < 0.012
    back = type(norm).from_dict(norm.to_dict())
    np.testing.assert_allclose(back.energy_ref, norm.energy_ref)


def test_flop_counter_counts_a_linear_model_exactly(emt_structures):
    """An MLP on per-atom features: forward 2·N·d_in·d_out per layer, backward twice that."""

    class PerAtom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 8)
            self.out = torch.nn.Linear(8, 1)

        def forward(self, b):
            h = self.out(torch.tanh(self.lin(b.positions)))[:, 0]
            return h.sum()

    b = collate(emt_structures[:4], labels=True)
    n = b.num_atoms
    flops = count_step_flops(PerAtom(), b, lambda m, batch: m(batch))
    fwd = 2 * n * 3 * 8 + 2 * n * 8 * 1
    # backward: grad wrt weights for both layers, grad wrt input of the second layer only
    bwd = 2 * n * 3 * 8 + 2 * n * 8 * 1 + 2 * n * 8 * 1
    assert flops == fwd + bwd


def test_flop_model_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    natoms = rng.integers(2, 40, size=50)
    coef = [1000.0, 5000.0, 30.0, 0.0]
    model = FlopModel(coef)
    batches = representative_batches(natoms, 8, rng)
    assert len(batches) >= 4 and any(len(b) == 1 for b in batches)
    fitted = fit_flop_model([(natoms[b], model(natoms[b])) for b in batches])
    assert fitted.max_rel_error < 1e-6
    for b in batches:
        assert fitted(natoms[b]) == pytest.approx(model(natoms[b]), rel=1e-6)
