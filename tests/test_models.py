"""First neural models (fcn, transformer): registry, size ladders, output shapes and units,
batch independence, lattice awareness, training signal, and the `models` command."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import matscale.models as registry
from matscale.cli import main as matscale_main
from matscale.data.batch import collate
from matscale.errors import ConfigError, DataError
from matscale.models import build, count_parameters, predict, sizes
from matscale.models.cli import main as models_main

NEURAL = ("fcn", "transformer")
MINE = ("mean", "linear", "fcn", "transformer")


@pytest.fixture(scope="module")
def structures(mixed_emt_structures):
    return mixed_emt_structures


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("arch", NEURAL)
def test_every_size_builds_and_predicts_shapes(arch, structures):
    small = structures[:2]
    for size in sizes(arch):
        torch.manual_seed(0)
        model = build(arch, size)
        assert (model.arch, model.size) == (arch, size)
        out = predict(model, small)
        n = sum(len(a) for a in small)
        assert out["energy"].shape == (2,) and out["forces"].shape == (n, 3) and out["stress"].shape == (2, 3, 3)
        assert all(np.isfinite(v).all() for v in out.values())
        np.testing.assert_allclose(out["stress"], out["stress"].transpose(0, 2, 1))  # symmetric by construction


@pytest.mark.parametrize("arch", NEURAL)
def test_ladder_spans_three_decades_and_grows(arch):
    counts = []
    for size in sizes(arch):
        with torch.device("meta"):
            total, non_emb = count_parameters(build(arch, size))
        assert 0 < non_emb < total  # the element embedding is the only excluded table
        counts.append(non_emb)
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    cpu_ladder = counts[: sizes(arch).index("xl") + 1]
    assert cpu_ladder[0] <= 1e4 and cpu_ladder[-1] >= 1e7 and cpu_ladder[-1] / cpu_ladder[0] >= 1e3


@pytest.mark.parametrize("arch", NEURAL)
def test_non_embedding_count_excludes_exactly_the_element_table(arch):
    model = build(arch, "xs")
    total, non_emb = count_parameters(model)
    assert total - non_emb == model.element.weight.numel()
    assert total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", NEURAL)
def test_normalisation_maps_to_physical_units(arch, structures):
    torch.manual_seed(0)
    model = build(arch, "xs").eval()
    batch = collate(structures)
    raw = {k: v.detach() for k, v in model.compute(batch).items()}
    ref = torch.zeros(119)
    ref[[13, 28, 29, 46, 47, 79]] = torch.tensor([-3.0, -4.0, -3.5, -5.0, -2.5, -3.2])
    model.set_normalization(ref, 0.5, 2.0, 0.01)
    out = predict(model, structures)
    expected_e = 0.5 * raw["energy"] + torch.stack([ref[torch.as_tensor(a.numbers)].sum() for a in structures])
    np.testing.assert_allclose(out["energy"], expected_e.numpy(), rtol=1e-5)
    np.testing.assert_allclose(out["forces"], 2.0 * raw["forces"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["stress"], 0.01 * raw["stress"].numpy(), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("arch", NEURAL)
def test_mixed_batch_equals_one_by_one(arch, structures):
    torch.manual_seed(0)
    model = build(arch, "s")
    together = predict(model, structures, batch_size=len(structures))
    alone = [predict(model, [a]) for a in structures]
    np.testing.assert_allclose(together["energy"], [x["energy"][0] for x in alone], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(together["forces"], np.concatenate([x["forces"] for x in alone]), atol=1e-5)
    np.testing.assert_allclose(together["stress"], np.concatenate([x["stress"] for x in alone]), atol=1e-5)


@pytest.mark.parametrize("arch", NEURAL)
def test_outputs_depend_on_positions_species_and_cell(arch, structures):
    torch.manual_seed(0)
    model = build(arch, "s")
    a = structures[4]
    base = predict(model, [a])
    moved, swapped, strained = a.copy(), a.copy(), a.copy()
    moved.positions[0] += [0.2, -0.1, 0.1]
    swapped.numbers[0] = 78
    strained.set_cell(a.cell[:] * 1.03, scale_atoms=False)  # same Cartesian atoms, new lattice
    for other in (moved, swapped, strained):
        out = predict(model, [other])
        assert not np.allclose(out["energy"], base["energy"], atol=1e-6)
        assert not np.allclose(out["stress"], base["stress"], atol=1e-7)  # stress sees the lattice


@pytest.mark.parametrize("arch", NEURAL)
def test_every_parameter_gets_a_gradient(arch, structures):
    torch.manual_seed(0)
    model = build(arch, "xs")
    batch = collate(structures)
    out = model(batch)
    (out["energy"].square().mean() + out["forces"].square().mean() + out["stress"].square().mean()).backward()
    used = set(batch.numbers.tolist())
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        grad = p.grad[sorted(used)] if name == "element.weight" else p.grad
        assert grad.abs().sum() > 0, name


@pytest.mark.parametrize("arch,lr", [("fcn", 1e-2), ("transformer", 1e-2)])
def test_short_adam_run_fits_labels(arch, lr, structures):
    """A plain Adam loop on six structures drives an energy+force+stress loss down fast."""
    torch.manual_seed(0)
    model = build(arch, "xs")
    batch = collate(structures)
    e_ref = (batch.energy / batch.natoms).mean()
    model.set_normalization(torch.full((119,), float(e_ref)), 0.1, float(batch.forces.std()), float(batch.stress.std()))
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def loss():
        out = model(batch)
        return (((out["energy"] - batch.energy) / batch.natoms).abs().mean() / 0.1
                + ((out["forces"] - batch.forces) / model.force_scale).norm(dim=-1).mean()
                + ((out["stress"] - batch.stress) / model.stress_scale).abs().mean())

    with torch.no_grad():
        initial = float(loss())
    for _ in range(150):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    with torch.no_grad():
        final = float(loss())
    assert final < 0.3 * initial, (initial, final)


@pytest.mark.parametrize("arch", NEURAL)
def test_singular_cell_is_a_clear_error(arch, structures):
    a = structures[0].copy()
    a.set_cell(np.zeros((3, 3)))
    a.pbc = False
    with pytest.raises(DataError, match="singular cell"):
        predict(build(arch, "xs"), [a])


def test_unknown_size_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown size"):
        build("transformer", "huge")


# -- `python -m matscale models` -------------------------------------------------------------

def test_models_json_lists_every_size_with_counts(capsys):
    assert matscale_main(["models", "--json", *[x for a in MINE for x in ("--arch", a)]]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [(r["arch"], r["size"]) for r in items] == [(a, s) for a in MINE for s in sizes(a)]
    for r in items:
        assert {"arch", "size", "params_total", "params_non_embedding", "description"} <= set(r)
        assert isinstance(r["params_total"], int) and 0 <= r["params_non_embedding"] <= r["params_total"]
        assert r["trainable"] == (r["arch"] in NEURAL)
    xs = next(r for r in items if (r["arch"], r["size"]) == ("transformer", "xs"))
    assert (xs["params_total"], xs["params_non_embedding"]) == count_parameters(build("transformer", "xs"))


def test_models_listing_survives_an_unimportable_architecture(monkeypatch, capsys):
    monkeypatch.setitem(registry.ARCH_MODULES, "broken", "matscale.models.no_such_module")
    assert models_main(["--arch", "broken", "--arch", "fcn"]) == 0
    captured = capsys.readouterr()
    assert "broken: unavailable" in captured.err and "no_such_module" in captured.err
    assert "fcn" in captured.out and "xl" in captured.out and "broken" not in captured.out


def test_models_unknown_arch_is_an_error(capsys):
    assert matscale_main(["models", "--arch", "nope"]) == 2
    assert "unknown architecture 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("arch", NEURAL)
def test_bf16_autocast_keeps_total_energy_precision(arch, structures):
    """Heads may run in bf16, but energies of ~100 eV must not be rounded to bf16 (~0.5 eV)."""
    torch.manual_seed(0)
    model = build(arch, "xs").eval()
    model.set_normalization(torch.full((119,), -4.0), 0.1, 1.0, 0.01)
    batch = collate(structures)
    with torch.no_grad():
        full = model(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(batch)
    assert all(v.dtype == torch.float32 for v in mixed.values())
    assert float((mixed["energy"] - full["energy"]).abs().max()) < 0.05  # eV, on totals of up to −128 eV
