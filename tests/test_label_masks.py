"""Label masks: structures lacking energy, forces or stress train and validate; the loss and metrics
skip the missing terms per structure and count them; an all-missing weighted label is a clear
error; baselines are floors on mixed cell sizes; small splits warn; stats show coverage and digits."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator

from matscale import models
from matscale.config import TrainConfig
from matscale.data.batch import collate
from matscale.data.stats import decimals, format_table
from matscale.errors import DataError
from matscale.train.loop import train
from matscale.train.loss import COMPONENTS, PHYSICAL, LossMeter, LossScales, LossWeights, errors, loss
from matscale.train.normalization import fit_normalization

torch.set_num_threads(1)
OMAT = LossWeights(2.5, 20.0, 5.0, 5.0)  # the OMat24 weights (TrainConfig defaults)


def drop(atoms, *labels):
    """A copy of `atoms` whose calculator lacks `labels`."""
    b = atoms.copy()
    res = {k: v for k, v in atoms.calc.results.items() if k not in labels}
    b.calc = SinglePointCalculator(b, **res)
    b.info.update(atoms.info)
    return b


@pytest.fixture(scope="module")
def partial(emt_structures):
    """8 structures: #1 without stress, #2 without forces, #3 without energy, the rest complete."""
    s = [a for a in emt_structures[:8]]
    return [s[0], drop(s[1], "stress"), drop(s[2], "forces"), drop(s[3], "energy")] + s[4:]


def noisy_prediction(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    fill = lambda t: torch.nan_to_num(t, nan=0.0)  # noqa: E731  (targets of missing labels are NaN)
    return {"energy": (fill(batch.energy) + torch.randn(batch.num_structures, generator=g, dtype=torch.float64)).requires_grad_(),
            "forces": (fill(batch.forces) + 0.1 * torch.randn(batch.num_atoms, 3, generator=g, dtype=torch.float64)).requires_grad_(),
            "stress": (fill(batch.stress) + 0.01 * torch.randn(batch.num_structures, 3, 3, generator=g, dtype=torch.float64)).requires_grad_()}


def test_batch_flags_and_masked_loss_equal_the_loss_over_labelled_structures(partial):
    batch = collate(partial, labels=True, dtype=torch.float64)
    assert batch.has_stress.tolist() == [True, False] + [True] * 6 and not batch.has_forces[2] and not batch.has_energy[3]
    assert torch.isnan(batch.stress[1]).all() and torch.isnan(batch.energy[3])
    pred = noisy_prediction(batch)
    total, err = loss(pred, batch, OMAT, LossScales())
    total.backward()
    assert torch.isfinite(total) and all(torch.isfinite(p.grad).all() for p in pred.values())
    assert float(pred["stress"].grad[1].abs().sum()) == 0.0 and float(pred["energy"].grad[3]) == 0.0
    lo, hi = int(batch.ptr[2]), int(batch.ptr[3])
    assert float(pred["forces"].grad[lo:hi].abs().sum()) == 0.0
    # each term is the mean over the structures (atoms) that carry its label
    e = err["energy"][[0, 1, 2, 4, 5, 6, 7]].mean()
    f_atoms = torch.cat([err["force"][int(batch.ptr[i]):int(batch.ptr[i + 1])] for i in range(8) if i != 2])
    s_iso = err["stress_iso"][[0, 2, 3, 4, 5, 6, 7]].mean()
    s_aniso = err["stress_aniso"][[0, 2, 3, 4, 5, 6, 7]].mean()
    expected = (2.5 * e + 20 * f_atoms.mean() + 5 * s_iso + 5 * s_aniso).detach()
    assert float(total.detach()) == pytest.approx(float(expected), rel=1e-12)
    complete = collate(partial[:1] + partial[4:], labels=True, dtype=torch.float64)
    plain = errors(noisy_prediction(complete), complete)
    assert "mask_energy" not in plain  # fully labelled batches take the unmasked path
    meter = LossMeter(OMAT, LossScales())
    meter.add(err, batch.num_structures, batch.num_atoms)
    res = meter.result("val")
    assert res["val_n_energy"] == 7 and res["val_n_stress"] == 7
    assert res["val_n_forces"] == batch.num_atoms - (hi - lo)
    assert res["val_loss"] == pytest.approx(float(expected), rel=1e-9)
    assert res["val_energy_mae_eV_atom"] == pytest.approx(float(e.detach()), rel=1e-9)


def test_fully_labelled_metrics_keep_their_columns(emt_structures):
    batch = collate(emt_structures[:6], labels=True, dtype=torch.float64)
    meter = LossMeter(OMAT, LossScales())
    meter.add(loss(noisy_prediction(batch), batch, OMAT, LossScales())[1], 6, batch.num_atoms)
    expected = (["val_loss"] + [f"val_loss_{c}" for c in COMPONENTS] + [f"val_{n}" for n, _ in PHYSICAL.values()])
    assert list(meter.result("val")) == expected  # no n_* columns: the committed metrics stay as they were
    state = meter.state_dict()
    state.pop("labelled")  # a checkpoint from before label masks
    old = LossMeter(OMAT, LossScales())
    old.load_state_dict(state)
    assert old.result("val") == meter.result("val")


def test_conservative_model_with_missing_forces_still_trains(partial):
    model = models.build("schnet", "xs")
    model.set_normalization(fit_normalization(partial).energy_ref, 0.1, 0.5, 0.01)
    batch = collate(partial[:4], labels=True)
    total, _ = loss(model(batch), batch, OMAT, LossScales(0.1, 0.5, 0.01))
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(total) and grads and all(torch.isfinite(g).all() for g in grads)


def test_normalisation_fits_present_labels_only(partial):
    norm = fit_normalization(partial)
    assert norm.coverage == {"structures": 8, "energy": 7, "forces": 7, "stress": 7}
    stress = np.stack([a.get_stress(voigt=False) for i, a in enumerate(partial) if i != 1])
    assert norm.stress_scale == pytest.approx(float(np.sqrt(np.mean(stress ** 2))), rel=1e-12)
    assert set(norm.elements) == {13, 28, 29, 47} and norm.to_dict()["elements"] == sorted(norm.elements)


def test_all_missing_weighted_label_is_a_clear_error_and_weight_zero_trains(tmp_path, emt_structures, emt_val_structures):
    val = [drop(a, "stress") for a in emt_val_structures[:6]]
    cfg = TrainConfig(arch="fcn", size="xs", epochs=1, batch_size=8, device="cpu", run_root=str(tmp_path))
    with pytest.raises(DataError, match=r"no structure in val \(6 structures\) has a stress label; set its loss "
                                        r"weight to 0 \(--stress-iso-weight 0 --stress-aniso-weight 0\)"):
        train(cfg, train_set=emt_structures[:12], val_set=val, quiet=True)
    cfg = TrainConfig(arch="fcn", size="xs", epochs=1, batch_size=8, device="cpu", run_root=str(tmp_path / "b"),
                      stress_iso_weight=0.0, stress_aniso_weight=0.0)
    r = train(cfg, train_set=[drop(a, "stress") if i % 2 else a for i, a in enumerate(emt_structures[:12])],
              val_set=val, quiet=True)
    row = r.metrics.iloc[-1]
    assert r.status == "completed" and row["val_n_stress"] == 0 and row["train_n_stress"] == 6
    assert np.isnan(row["val_stress_mae_eV_A3"]) and np.isfinite(row["val_loss"])
    saved = json.loads((r.run_dir / "summary.json").read_text())
    assert saved["label_coverage"]["train"]["stress"] == 6 and saved["label_coverage"]["val"]["stress"] == 0
    # guards: both splits are below 20 structures -> one warning each, in summary.json
    assert len(saved["warnings"]) == 2 and "validation uses only 6 structure(s) (< 20)" in saved["warnings"][0]
    assert "training uses only 12 structure(s)" in saved["warnings"][1]


def _mixed_sizes(n, seed, elements=(29, 13, 28, 47)):
    """Energies with per-element references plus size- and strain-dependent terms, cells of 1–64 atoms."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    ref = {29: -3.5, 13: -3.0, 28: -4.4, 47: -2.6, 14: -5.4}
    out = []
    for _ in range(n):
        N = int(rng.choice([1, 2, 4, 8, 16, 32, 48, 64]))
        numbers = rng.choice(elements, N)
        a = Atoms(numbers=numbers, positions=rng.random((N, 3)) * 6, cell=np.eye(3) * 6, pbc=True)
        per_atom = np.mean([ref[int(z)] for z in numbers]) + 0.3 / N + 0.02 * rng.standard_normal()
        a.calc = SinglePointCalculator(a, energy=per_atom * N, forces=np.zeros((N, 3)), stress=np.zeros(6))
        out.append(a)
    return out


@pytest.mark.parametrize("elements", [(29, 13, 28, 47), (14,)])
def test_linear_baseline_never_loses_to_mean_on_mixed_cell_sizes(elements):
    """Must-show: fitted on energy per atom, the linear baseline beats (or, with one element, ties)
    the mean baseline on the per-atom metric, on training and held-out sets of 1–64-atom cells."""
    for seed in range(3):
        train_set, test_set = _mixed_sizes(80, seed, elements), _mixed_sizes(40, seed + 100, elements)
        mae = {}
        for arch in ("mean", "linear"):
            model = models.build(arch).fit(train_set)
            for name, data in (("train", train_set), ("test", test_set)):
                out = models.predict(model, data)
                n = np.array([len(a) for a in data])
                truth = np.array([a.get_potential_energy() for a in data]) / n
                mae[arch, name] = np.abs(out["energy"] / n - truth).mean()
        for name in ("train", "test"):
            if len(elements) > 1:
                assert mae["linear", name] < 0.5 * mae["mean", name], (seed, name, mae)
            else:
                assert mae["linear", name] == pytest.approx(mae["mean", name], rel=1e-9, abs=1e-12)


def test_stats_digits_follow_the_spread():
    import pandas as pd

    assert decimals(0.03) == 3 and decimals(2.5) == 1 and decimals(40.0) == 0 and decimals(0.0) == 4
    row = {"split": "train", "subset": "mine", "quantity": "energy_per_atom", "unit": "eV/atom", "count": 6,
           "mean": -163.1123, "std": 0.0312, "min": -163.16, "p05": -163.15, "p25": -163.13, "p50": -163.11,
           "p75": -163.09, "p95": -163.07, "max": -163.06}
    text = format_table(pd.DataFrame([row]))
    assert "-163.112" in text and "0.031" in text and "-163.1 " not in text
    assert "label coverage" in text
