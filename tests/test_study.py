"""matscale.study on a synthetic study whose losses follow a known law (tests/conftest.py, study
section), one real tiny run (equivariance cache), and the default study's design.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import (STUDY_FLOPS_PER_PARAM_SAMPLE as FLOPS_PER_PARAM_SAMPLE, STUDY_FRACS as FRACS,
                      STUDY_ROWS as ROWS, STUDY_SIZES as SIZES, STUDY_TRUE as TRUE, study_fake_params as fake_params)
from matscale import study as studies
from matscale.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic(synthetic_study):
    path, root = synthetic_study
    return path, root, studies.results(path, root)


@pytest.fixture(scope="module")
def fits(synthetic):
    """Every fit of the synthetic study, computed once for the module."""
    _, root, table = synthetic
    curves = studies.curves(table, root)
    return {"data": studies.scaling(table, "data"), "params": studies.scaling(table, "params"),
            "curves": curves, "fronts": studies.frontier(table, curves, bootstrap=30), "joint": studies.joint(table)}


# -- plan and results ---------------------------------------------------------------------------------
def test_results_follow_the_plan(synthetic):
    path, root, table = synthetic
    plan = studies.plan(path)
    assert list(table["run_id"]) == list(plan["run_id"])  # stray runs are ignored, order is the file's
    assert len(plan) == 2 * (len(FRACS) * 2 + 4) + 1
    status = table.set_index(["arch", "size", "frac", "seed"])["status"]
    assert status[("schnet", "xl", 0.2, 0)] == "missing"
    assert status[("transformer", "xs", 0.01, 1)] == "failed"
    assert table["finished"].sum() == len(table) - 2
    done = table[table["finished"] & (table["arch"] == "transformer")]
    assert (done["params"] > 0).all() and (done["flops"] > 0).all() and (done["n_train"] > 0).all()
    counts = studies.status_table(table)
    assert counts.loc["schnet", "missing"] == 1 and counts.loc["transformer", "failed"] == 1
    assert list(studies.baselines(table)["arch"]) == ["linear"]
    assert "linear" not in set(studies.trainable(table)["arch"])


def test_study_names_resolve_to_sweep_files(tmp_path):
    assert studies.study_path("default") == REPO / "book" / "sweeps" / "default.yaml"
    with pytest.raises(ConfigError, match="no study 'nope'"):
        studies.study_path("nope")
    with pytest.raises(ConfigError, match="not in study"):
        studies.results(REPO / "book" / "sweeps" / "default.yaml", tmp_path, archs=["nope"])


def test_series_pick_the_cross_design(synthetic):
    _, _, table = synthetic
    data = studies.series(table, "transformer", "data")
    assert set(data["size"]) == {"xs"} and sorted(set(data["frac"])) == FRACS
    assert len(data) == 2 * len(FRACS) - 1  # two seeds, one failed run left out
    params = studies.series(table, "schnet", "params")
    assert set(params["frac"]) == {0.2} and list(dict.fromkeys(params["size"])) == ["xs", "s", "m", "l"]
    agg = studies.aggregate(data, "n_train")
    assert list(agg["n"]) == [1, 2, 2, 2, 2] and np.isnan(agg["std"].iloc[0])


# -- fits ----------------------------------------------------------------------------------------------------
def test_data_and_parameter_fits_recover_the_true_exponents(fits):
    data, params = fits["data"], fits["params"]
    for arch, truth in TRUE.items():
        s = data[arch]
        assert s.ok and s.law in studies.EXPONENTS, s.reason
        assert set(s.comparison["law"]) >= {"power", "power_floor", "broken"}
        p = s.fit.params[s.exponent]
        if s.law == "power_floor":  # (coverage of the intervals is tested in test_fit_coverage.py)
            assert abs(p.value - truth["beta"]) < 0.1 and p.ci_low < p.value < p.ci_high
    s = params["transformer"]  # 5 sizes -> AICc ranks the laws
    assert s.ok and s.comparison["aicc"].notna().sum() >= 2
    assert s.law == "power_floor"
    p = s.fit.params["alpha"]
    assert abs(p.value - TRUE["transformer"]["alpha"]) < 0.1 and p.ci_low < p.value < p.ci_high
    # schnet has 4 sizes (one missing): AICc is defined for the power law only, which is used
    assert params["schnet"].ok and params["schnet"].law == "power"
    summary = studies.fit_summary(params)
    assert list(summary["arch"]) == ["transformer", "schnet"] and summary["value"].notna().all()
    assert (summary["decades"] >= 2).all()
    pts = studies.fit_points(data)
    assert {"arch", "n_train", "val_loss", "sigma", "n"} <= set(pts.columns)


def test_too_few_runs_give_a_reason_not_an_error(synthetic):
    _, _, table = synthetic
    few = table[~((table["arch"] == "schnet") & (table["frac"] < 0.1))]
    s = studies.scaling(few, "data", ["schnet"])["schnet"]
    assert not s.ok and "a power law needs at least 3" in s.reason
    empty = table.assign(status="missing", finished=False)
    assert studies.scaling(empty, "params")["transformer"].reason
    assert studies.joint(empty)["schnet"].reason
    assert studies.frontier(empty, studies.curves(empty))["schnet"].reason
    assert studies.extrapolation(studies.scaling(empty, "data"))["reason"].notna().all()
    row = studies.comparison(studies.scaling(few, "data"), studies.scaling(few, "params")).loc["schnet"]
    assert row["data exponent"] == "—" and "data:" in row["notes"]


@pytest.fixture(scope="module")
def grid_study(tmp_path_factory):
    """(sweep file, runs root) of a grid: every arch at 4 sizes x 3 fractions, one seed."""
    from conftest import build_synthetic_study

    folder = tmp_path_factory.mktemp("grid-study")
    spec = {"name": "grid", "base": {"epochs": 3, "batch_size": 16, "val_frac": 0.1, "lr": 0.001},
            "grid": {"arch": {arch: {"size": sizes[:4], "frac": [0.02, 0.05, 0.2], "seed": [0]}
                              for arch, sizes in SIZES.items()}}}
    return build_synthetic_study(folder, spec, skip=set(), fail=set()), folder / "runs"


def test_the_cross_design_does_not_identify_the_joint_law(fits):
    for arch in TRUE:
        j = fits["joint"][arch]
        assert not j.ok and j.optimal is None
        assert j.reason.startswith("not identified: the runs are not a grid (5 data size(s) D, ")
        assert "at most 1 N shared by two D" in j.reason
    assert studies.allocation(fits["joint"], [1e12]).empty


def test_joint_fit_and_compute_optimal_allocation(grid_study):
    from matscale.study import pages

    table = studies.results(*grid_study)
    joint = studies.joint(table)
    for arch, truth in TRUE.items():
        j = joint[arch]
        assert j.ok, j.reason
        assert abs(j.fit.params["alpha"].value - truth["alpha"]) < 0.1
        assert abs(j.fit.params["beta"].value - truth["beta"]) < 0.1
        assert j.k == pytest.approx(FLOPS_PER_PARAM_SAMPLE)
        a = j.fit.params["beta"].value / (j.fit.params["alpha"].value + j.fit.params["beta"].value)
        assert j.optimal["a"] == pytest.approx(a)
    alloc = studies.allocation(joint, [1e12, 1e14])
    assert len(alloc) == 4 and (alloc["N* (parameters)"] > 0).all()
    big = alloc[alloc["compute C (FLOPs)"] == 1e14]
    small = alloc[alloc["compute C (FLOPs)"] == 1e12]
    assert (big["N* (parameters)"].to_numpy() > small["N* (parameters)"].to_numpy()).all()
    pts, slices = studies.joint_slices(joint["transformer"], along="params")
    assert len(slices) == 3 and len(pts) == 12  # three D, each with four sizes
    x = np.array([1e4, 1e5])
    lo, hi = next(iter(slices.values())).band(x)
    assert (lo < next(iter(slices.values())).predict(x)).all() and (hi > lo).all()
    page = pages.joint_scaling(*grid_study)
    a = page.tables["exponents"].loc["schnet", "a (N* ∝ C^a)"]
    assert "±" in a and "[" in a
    assert float(a.split()[0]) == pytest.approx(0.35 / (0.45 + 0.35), abs=0.1)  # a = beta / (alpha + beta)
    params = page.tables["parameters_schnet"]
    assert list(params.index) == ["E", "A", "alpha", "B", "beta"] and params["identified"].all()


def test_frontier_and_overall_front(synthetic, fits):
    _, _, table = synthetic
    curves, fronts = fits["curves"], fits["fronts"]
    assert set(curves["arch"]) == {"transformer", "schnet"}
    assert len(curves) == ROWS * studies.trainable(table[table["finished"]]).shape[0]
    for arch in TRUE:
        f = fronts[arch]
        assert len(f.front) >= 4 and f.front["flops"].is_monotonic_increasing
        assert f.front["val_loss"].is_monotonic_decreasing
        assert f.ok and f.fit.params["gamma"].value > 0 and "bootstrap" in f.fit.ci_method
    overall = studies.overall_front(curves)
    assert set(overall["arch"]) <= {"transformer", "schnet"} and len(overall) >= 2


def test_extrapolation_predicts_the_held_out_runs(fits):
    checks = studies.extrapolation(fits["params"])
    t = checks.set_index("arch").loc["transformer"]
    assert t["x"] == fake_params("transformer", "xl") and t["n_fit"] == 4
    # 4 points do not identify the 3-parameter power_floor the full series chose: power is used
    assert t["law"] == "power" and fits["params"]["transformer"].law == "power_floor"
    assert t["lower"] < t["conf_lower"] < t["predicted"] < t["conf_upper"] < t["upper"]
    assert abs(t["rel_error"]) < 0.2 and t["inside"] in (True, False)
    assert t["x_reach"] >= fake_params("transformer", "l") * 10 ** 0.5 * (1 - 1e-9)


def test_comparison_table_lists_every_exponent(fits):
    data, params, fronts = fits["data"], fits["params"], fits["fronts"]
    table_ = studies.comparison(data, params, fronts, fits["joint"])
    assert list(table_.index) == ["transformer", "schnet"]
    for col in ("data exponent", "parameters exponent", "compute exponent γ"):
        assert table_[col].str.contains("±").all(), col
        assert table_[col].str.contains(r"\[").all(), col
    for col in ("joint α (N)", "joint β (D)", "a = β/(α+β)"):  # a cross is not a grid
        assert (table_[col] == "—").all(), col
    assert table_["notes"].str.contains("joint: not identified: the runs are not a grid").all()
    rows = studies.exponent_rows(data, params, fronts)
    assert set(rows["exponent"]) == {"data (D)", "parameters (N)", "compute (C)"} and len(rows) == 6
    assert studies.format_estimate(0.3123, 0.021, 0.27, 0.36) == "0.312 ± 0.021 [0.27, 0.36]"
    assert studies.format_estimate(float("nan")) == "—"


def test_chart_builders_for_the_study_pages(fits):
    from matscale import charts

    params = fits["params"]
    checks = studies.extrapolation(params)
    check = checks.set_index("arch").loc["transformer"]
    fit = check["_fit"]
    s = params["transformer"]
    pts = s.points.rename(columns={"mean": "val_loss"}).assign(held_out=lambda d: d["params"] == d["params"].max())
    spec = charts.extrapolation(pts, "params", "val_loss", fit, x_max=check["x_reach"]).to_dict()
    roles = {r["role"] for rows in spec["datasets"].values() for r in rows if "role" in r}
    assert roles == {"fitted", "held out (measured)"}
    curve_x = [r["x"] for rows in spec["datasets"].values() for r in rows if "upper" in r]
    assert max(curve_x) >= check["x_reach"] * (1 - 1e-9)  # the prediction band reaches half a decade beyond
    spec = charts.exponents(studies.exponent_rows(fits["data"], params)).to_dict()
    assert spec["facet"]["field"] == "exponent" and spec["resolve"]["scale"]["x"] == "independent"


# -- equivariance on a real run ------------------------------------------------------------------------------
def test_equivariance_of_a_real_run_is_measured_then_cached(tmp_path, tiny_data_root):
    import torch

    from matscale.train import train

    torch.set_num_threads(1)
    spec = {"name": "real", "base": {"epochs": 1, "batch_size": 16, "val_frac": 0.1, "data": str(tiny_data_root),
                                     "device": "cpu"},
            "grid": {"arch": {"fcn": {"size": ["xs"]}}, "frac": [0.2]}}
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    from matscale.sweep import expand

    (config,) = expand(path)
    result = train(config.replace(run_root=str(tmp_path / "runs")), quiet=True)
    assert result.status == "completed"
    table = studies.results(path, tmp_path / "runs")  # the real loop's summary maps onto the columns
    row = table.iloc[0]
    assert row["finished"] and row["params"] > 0 and row["n_train"] > 0 and row["flops"] > 0
    assert np.isfinite(row["val_force_l2mae_eV_A"]) and row["steps"] > 0
    from matscale.train.evaluate import store_equivariance

    assert list(studies.equivariance(table)["source"]) == ["unavailable"]  # the study only reads
    assert store_equivariance(row["run_dir"]) == "measured"  # what `python -m matscale study` runs
    first = studies.equivariance(table)
    assert list(first["source"]) == ["cached"] and first["forces_rel"].iloc[0] > 1e-3  # unconstrained
    cache = Path(row["run_dir"]) / studies.EQUIVARIANCE_FILE
    assert json.loads(cache.read_text())["forces_rel"] == first["forces_rel"].iloc[0]
    for ckpt in (Path(row["run_dir"]) / "checkpoints").iterdir():
        ckpt.unlink()  # as in a committed study: no checkpoints
    assert store_equivariance(row["run_dir"]) == "cached"
    again = studies.equivariance(table)
    assert list(again["source"]) == ["cached"] and again["forces_rel"].iloc[0] == first["forces_rel"].iloc[0]
    cache.unlink()
    assert store_equivariance(row["run_dir"]) == "unavailable"
    assert list(studies.equivariance(table)["source"]) == ["unavailable"]


# -- the default study ------------------------------------------------------------------------------------------
def test_default_study_identifies_what_it_claims():
    """Issue 13's design: equal steps, data series over >= 2 decades with >= 3 seeds, a >= 2 D x >= 3 N
    grid, validation from every parent, a learning-rate check at both ends of each ladder."""
    from matscale import models

    plan = studies.plan("default")
    invalid = plan[~plan["valid"]]
    assert invalid.empty, f"default study points with invalid settings: {list(invalid['run_id'])}"
    from matscale.sweep import load

    configs = load(studies.study_path("default")).configs
    assert all(c.val_per_parent >= 1 for c in configs if c.arch != "linear")  # every validation parent
    main = plan[plan["role"] == "main"]
    trained = main[~main["arch"].isin(["linear", "mean"])]
    assert set(trained["max_steps"]) == {300}  # equal optimiser steps for every scaling run
    assert {"transformer", "equiformer_v2", "schnet"} <= set(plan["arch"])
    for arch in ("schnet", "equiformer_v2"):
        rows = trained[trained["arch"] == arch]
        per_size = rows.groupby("size")["frac"].nunique()
        data_size = per_size.idxmax()
        data = rows[rows["size"] == data_size]
        fracs = sorted(set(data["frac"]))
        assert len(fracs) >= 5 and math.log10(max(fracs) / min(fracs)) >= 2.0, arch
        assert data.groupby("frac")["seed"].nunique().min() >= 3, arch
        grid = rows.groupby("frac")["size"].nunique()
        assert (grid >= 3).sum() >= 2, (arch, grid.to_dict())  # >= 2 D with >= 3 N each
        sizes = list(dict.fromkeys(rows["size"]))
        n = {s: models.count_parameters(models.build(arch, s))[1] for s in sizes}
        assert math.log10(max(n.values()) / min(n.values())) >= 2.0, (arch, n)
        lr = plan[(plan["arch"] == arch) & (plan["role"] == "lr")]
        smallest, largest = min(n, key=n.get), max(n, key=n.get)
        for size in (smallest, largest):  # 3 rates: the chosen one (a grid point) and >= 2 others
            assert lr[lr["size"] == size]["lr"].nunique() >= 2, (arch, size)
            chosen = set(rows[rows["size"] == size]["lr"])
            assert len(chosen) == 1 and not chosen & set(lr[lr["size"] == size]["lr"]), (arch, size)
        budget = plan[(plan["arch"] == arch) & (plan["role"] == "budget")]
        assert set(budget["max_steps"]) == {150} and set(budget["frac"]) == set(fracs), arch


def test_scaling_chart_can_keep_each_curve_on_its_own_range(fits):
    from matscale import charts

    params = fits["params"]
    points = studies.fit_points(params)
    spec = charts.scaling_fit(points, "params", "val_loss", {a: s.fit for a, s in params.items()}, sigma="sigma",
                              color="arch", span="group").to_dict()
    curves = [r for rows in spec["datasets"].values() for r in rows if "fit" in r]
    for arch in ("transformer", "schnet"):
        xs = [r["x"] for r in curves if r["arch"] == arch]
        have = points.loc[points["arch"] == arch, "params"]
        assert min(xs) == pytest.approx(have.min()) and max(xs) == pytest.approx(have.max())
    with pytest.raises(Exception, match="span must be"):
        charts.scaling_fit(points, "params", "val_loss", None, color="arch", span="nope")


def test_archs_filter_keeps_the_baselines_and_the_cli_reports(synthetic, capsys):
    path, root, _ = synthetic
    only = studies.results(path, root, archs=["schnet"])
    assert set(only["arch"]) == {"schnet", "linear"}
    assert studies.main([str(path), "--runs-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "missing" in out and "equivariance measurements" in out and "cached" in out
    assert studies.main(["no-such-study"]) == 2


def test_archive_moves_the_study_aside_so_it_reruns_from_scratch(tmp_path):
    """`make study` = archive + sweep: every planned folder moves to _archive/<time>/, nothing is
    deleted, stray runs stay, and the study then reads as all missing."""
    from conftest import build_synthetic_study, write_study_run
    from matscale.config import TrainConfig
    from matscale.runs import run_dirs

    path = build_synthetic_study(tmp_path)
    root = tmp_path / "runs"
    stray = write_study_run(root, TrainConfig(arch="transformer", size="s", frac=0.5, epochs=1), 1.0, 10, 10)
    before = studies.results(path, root)
    present = set(before.loc[before["status"] != "missing", "run_id"])
    assert studies.main([str(path), "--runs-root", str(root), "--archive"]) == 0
    after = studies.results(path, root)
    assert (after["status"] == "missing").all()
    (archived,) = (root / "_archive").iterdir()
    assert {p.name for p in archived.iterdir()} == present
    assert (archived / next(iter(present)) / "summary.json").is_file()
    assert [p.name for p in run_dirs(root)] == [stray.name]  # runs.load never looks into _archive
    from matscale.runs import archive

    assert archive(studies.plan(path)["run_id"], root) == []  # nothing left to move: a no-op
