"""Fits that say when they are not identified (matscale.fit.identify) and the study's fit logic
built on it: the AICc fallback, tidy parameter tables, seed weights, prediction intervals,
the final-point frontier, the grid rule of the joint law, the zero-force rule, and the
learning-rate and budget checks. Small synthetic tables only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from matscale.fit import fit_frontier, fit_law
from matscale.study import checks, tables
from matscale.study import fits as F

X = np.geomspace(300, 1e4, 6)
FRACS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
N_TRAIN = 20000


def _noisy(y, s=0.01, seed=0):
    return y * np.exp(s * np.random.default_rng(seed).standard_normal(len(y)))


# -- the rule ------------------------------------------------------------------------------------------
def test_a_floor_the_points_do_not_have_is_not_identified_and_power_is_shown():
    y = _noisy(10 * X ** -0.3 - 0.05, 0.002)  # bends the way no floor can: the best floor is E = 0
    floor = fit_law(X, y, "power_floor", log=True, ci="profile")
    assert not floor.identified and "E on its bound" in floor.why_not
    assert floor.note.startswith("not identified: E on its bound")
    front = fit_law(X * 1e12, y, "frontier", log=True, ci="profile")
    assert not front.identified and "L_inf on its bound" in front.why_not
    s = F.fit_series(pd.DataFrame({"n_train": X, "val_loss": y}), "n_train", laws=["power", "power_floor"])
    assert s.ok and s.law == "power" and s.fit.identified
    row = s.comparison.set_index("law").loc["power_floor"]
    assert not row["identified"] and "E on its bound" in row["why not"]


def test_a_better_law_that_is_not_identified_falls_back_with_a_note():
    # power_floor wins on AICc here but its amplitude's interval is open (a seeded noisy draw)
    y = _noisy(0.6 + 10 * X ** -0.3, 0.02, seed=10)
    s = F.fit_series(pd.DataFrame({"n_train": X, "val_loss": y}), "n_train", laws=["power", "power_floor"])
    assert s.comparison["law"].iloc[0] == "power_floor"
    assert s.law == "power"
    assert s.fallback.startswith("power_floor (") and s.fallback.endswith(
        "is not identified by these points; shown: power (AICc fallback)")
    assert "95% interval open" in s.fallback


def test_too_few_points_are_not_identified_and_show_no_parameters():
    x, y = X[:3], 10 * X[:3] ** -0.3
    fit = fit_law(x, _noisy(y), "power", log=True, ci="profile")
    assert not fit.identified and fit.why_not[0] == "fewer than 4 points (3)"
    s = F.fit_series(pd.DataFrame({"n_train": x, "val_loss": _noisy(y)}), "n_train")
    assert not s.ok and s.reason.startswith("not identified by these points: power (fewer than 4 points (3))")
    assert tables.parameters({"a": s}).empty
    assert tables.fit_summary({"a": s})["estimate"].iloc[0] == "—"


def test_a_law_with_a_real_floor_stays_identified_with_two_sided_intervals():
    x = np.geomspace(1e3, 1e6, 8)
    fit = fit_law(x, _noisy(0.5 + 30 * x ** -0.4, 0.005, seed=1), "power_floor", log=True, ci="profile")
    assert fit.identified and fit.why_not == [] and fit.note == ""
    table = fit.parameters(arch="a")
    assert list(table.columns) == ["arch", "law", "parameter", "value", "stderr", "ci_low", "ci_high", "identified"]
    assert list(table["parameter"]) == ["E", "A", "alpha"] and table["identified"].all()
    assert np.isfinite(table[["stderr", "ci_low", "ci_high"]].to_numpy()).all()
    assert (table["ci_low"] < table["value"]).all() and (table["value"] < table["ci_high"]).all()
    assert abs(fit["E"].value - 0.5) < 0.05 and fit["E"].ci_low > 0
    text = " ".join(map(str, table.to_numpy().ravel()))
    assert "[[" not in text and "Fit Statistics" not in text and "warning" not in text
    assert fit.to_dict()["identified"] is True


# -- a synthetic results table -------------------------------------------------------------------------
def _row(arch, size, frac, seed, loss, *, params=1e4, role="main", lr=3e-3, max_steps=400, force=None,
         status="completed"):
    D = int(frac * N_TRAIN)
    return {"run_id": f"{arch}-{size}-{frac}-{seed}-{role}-{lr}-{max_steps}", "arch": arch, "size": size,
            "frac": frac, "seed": seed, "role": role, "lr": lr, "max_steps": max_steps, "status": status,
            "finished": status in ("completed", "stopped_early"), "trainable": arch != "linear",
            "params": 0 if arch == "linear" else params, "n_train": D, "samples_seen": 16 * max_steps,
            "steps": max_steps, "flops": 0 if arch == "linear" else 300.0 * params * 16 * max_steps,
            "val_loss": loss, "final_val_loss": loss, "val_energy_mae_eV_atom": 1e-3 * loss,
            "val_force_l2mae_eV_A": 0.02 * loss if force is None else force, "val_stress_mae_eV_A3": 1e-4 * loss}


def _table(spread=0.01, budget_beta=0.4, seeds=3) -> pd.DataFrame:
    rows = [_row("linear", "-", 0.5, 0, 60.0, force=1.2, max_steps=0)]
    rng = np.random.default_rng(0)
    for i, frac in enumerate(FRACS):
        D = frac * N_TRAIN
        for seed in range(seeds):
            noise = np.exp(spread * rng.standard_normal())
            rows.append(_row("schnet", "s", frac, seed, (5 + 300 * D ** -0.4) * noise))
            noise = np.exp(spread * rng.standard_normal())
            rows.append(_row("schnet", "s", frac, seed, (5.5 + 300 * D ** -budget_beta) * noise, role="budget",
                             max_steps=200))
            rows.append(_row("transformer", "s", frac, seed, 45.0 * noise, force=1.21 + 0.004 * i))
    for lr, extra in ((1e-3, 0.3), (1e-2, 3.0)):  # the learning-rate check at frac 0.05
        for seed in range(seeds):
            rows.append(_row("schnet", "s", 0.05, seed, 5 + 300 * 1000 ** -0.4 + extra + 0.05 * seed, role="lr", lr=lr))
    return pd.DataFrame(rows)


def test_three_seeds_weight_the_fit_and_their_spread_enters_the_uncertainty():
    tight, wide = (F.scaling(_table(spread=s), "data", ["schnet"])["schnet"] for s in (0.005, 0.03))
    for s in (tight, wide):
        assert s.ok and s.sigma is not None and (s.points["n"] == 3).all()
        assert "weighted by 1/(its standard error" in s.notes[0]
        assert s.fit.data["sigma"].notna().all()
    width = lambda s: s.fit.params[s.exponent].ci_high - s.fit.params[s.exponent].ci_low  # noqa: E731
    assert width(wide) > 2 * width(tight)


def test_prediction_interval_holds_seed_noise_and_reaches_half_a_decade_beyond():
    s = F.scaling(_table(spread=0.03), "data", ["schnet"])["schnet"]
    rel, dof = F.seed_noise(s.points)
    assert 0.01 < rel < 0.06 and dof == 2 * len(FRACS)
    check = F.extrapolation({"schnet": s}).iloc[0]
    assert check["law"] and check["inside"] in (True, False)
    assert check["lower"] < check["conf_lower"] < check["predicted"] < check["conf_upper"] < check["upper"]
    fitted_max = s.points["n_train"].iloc[-2]
    assert check["x_reach"] >= fitted_max * 10 ** 0.5 * (1 - 1e-9)
    assert check["reach_lower"] < check["reach_upper"] and np.isfinite([check["reach_lower"], check["reach_upper"]]).all()
    band = check["_fit"]
    x = np.array([check["x_reach"]])
    (lo, hi), (clo, chi) = band.band(x), band.confidence(x)
    assert lo[0] < clo[0] and hi[0] > chi[0]  # wider than the confidence band: seed noise is in it
    ahead = F.forecast({"schnet": s})
    assert list(ahead["decades beyond"]) == [0.5, 1.0]
    assert (ahead["lower"] < ahead["conf_lower"]).all() and (ahead["x"] > s.points["n_train"].max()).all()


def test_a_series_that_does_not_beat_zero_forces_gets_no_law():
    table = _table()
    assert F.zero_force_error(table) == pytest.approx(1.2)
    s = F.scaling(table, "data", ["transformer"])["transformer"]
    assert not s.ok and not s.learns and s.fits == {}
    assert s.reason == ("transformer does not beat the zero-force baseline (force L2MAE 1.21–1.23 vs 1.2 eV/Å); "
                        "no law is fitted to a plateau")
    data, params = F.scaling(table, "data"), F.scaling(table, "params")
    row = tables.comparison(data, params).loc["transformer"]
    assert row["data exponent"] == "—" and "zero-force baseline" in row["notes"]
    assert "transformer" not in set(tables.exponent_rows(data, params)["arch"])
    assert F.extrapolation({"transformer": s}).iloc[0]["reason"] == s.reason
    terms = F.term_exponents(table, ["schnet", "transformer"], kinds=("data",))
    assert set(terms["term"]) == {"total loss", "energy MAE", "force L2MAE", "stress MAE"}
    t = terms.set_index(["arch", "term"])
    assert not t.loc[("transformer", "force L2MAE"), "identified"]
    assert t.loc[("schnet", "force L2MAE"), "identified"]
    assert t.loc[("schnet", "energy MAE"), "ci_low"] < t.loc[("schnet", "energy MAE"), "exponent"]


def test_frontier_uses_each_completed_runs_final_point_only():
    rows, curves = [], []
    for i, N in enumerate([1e3, 3e3, 1e4, 3e4, 1e5, 3e5]):
        loss = (2.0 + 50 * (300 * N * 6400) ** -0.15) * np.exp(0.004 * np.sin(3.0 * i))
        rows.append(_row("schnet", f"s{i}", 0.5, 0, loss, params=N))
        for k in (1, 2, 4):  # mid-schedule validations: lower compute, and one that undercuts everything
            curves.append({"run_id": rows[-1]["run_id"], "arch": "schnet", "size": f"s{i}", "flops": rows[-1]["flops"] * k / 4,
                           "val_loss": loss * (1 + 0.3 * (4 - k)) if k > 1 or i else 0.5})
    rows.append({**_row("schnet", "stopped", 0.5, 0, 1.0, params=5e2), "status": "stopped_early"})
    table, curves = pd.DataFrame(rows), pd.DataFrame(curves)
    finals = F.final_points(table, curves)
    assert len(finals) == 6 and "stopped" not in set(finals["size"])
    assert np.allclose(finals.set_index("run_id")["flops"], table.set_index("run_id").loc[finals["run_id"], "flops"])
    f = F.frontier(table, curves, ["schnet"], bootstrap=20)["schnet"]
    assert set(f.front["run_id"]) <= set(finals["run_id"]) and 0.5 not in set(f.front["val_loss"])
    assert np.isin(f.front["flops"], table["flops"]).all()  # no mid-schedule point
    assert f.ok and f.fit.identified and f.fit.params["gamma"].value > 0, f.reason


def test_the_joint_law_needs_a_grid():
    cross = pd.DataFrame({"size": ["s", "m", "l", "s", "s"], "frac": [0.5, 0.5, 0.5, 0.1, 0.2]})
    assert F.grid_reason(cross).startswith("not identified: the runs are not a grid (3 data size(s) D")
    grid = pd.DataFrame({"size": ["s", "m", "l"] * 2, "frac": [0.1] * 3 + [0.5] * 3})
    assert F.grid_reason(grid) is None
    j = F.joint(_table(), ["schnet"])["schnet"]
    assert not j.ok and "not a grid" in j.reason and j.optimal is None


def test_learning_rate_check_finds_the_best_rate_and_judges_the_main_one():
    lr = checks.lr_check(_table())
    assert set(lr["lr"]) == {1e-3, 3e-3, 1e-2} and (lr["n"] == 3).all()
    assert (lr["best_lr"] == 3e-3).all() and lr.loc[lr["main"], "lr"].tolist() == [3e-3]
    assert (lr["verdict"] == "main rate is the best").all()
    worse = _table()
    pick = (worse["role"] == "main") & (worse["frac"] == 0.05) & (worse["arch"] == "schnet")
    worse.loc[pick, "val_loss"] += 5.0
    assert (checks.lr_check(worse)["verdict"] == "main rate is worse beyond the seed spread").all()
    assert checks.lr_check(_table().drop(columns=["role"])).empty  # an older study: no check


def test_budget_check_compares_the_data_exponent_at_two_budgets():
    same = checks.budget_check(_table(budget_beta=0.4), ["schnet", "transformer"]).set_index("arch")
    s = same.loc["schnet"]
    assert s["steps_main"] == 400 and s["steps_budget"] == 200 and s["points"] == len(FRACS) and s["runs"] == 18
    assert s["alpha_main_low"] < s["alpha_main"] < s["alpha_main_high"]
    assert s["difference_low"] < s["difference"] < s["difference_high"]
    assert s["verdict"] == "alpha does not change beyond its uncertainty"
    assert "no budget-sensitivity runs" in same.loc["transformer", "reason"]
    moved = checks.budget_check(_table(budget_beta=0.6), ["schnet"]).iloc[0]
    assert moved["verdict"] == "alpha changes beyond its uncertainty" and moved["difference"] < 0


def test_exponent_table_lists_identified_and_unidentified_exponents():
    table = _table()
    rows = tables.exponent_table(F.scaling(table, "data"), F.scaling(table, "params")).set_index(["arch", "exponent"])
    s = rows.loc[("schnet", "data (D)")]
    assert s["identified"] and s["ci_low"] < s["value"] < s["ci_high"]
    t = rows.loc[("transformer", "data (D)")]
    assert not t["identified"] and np.isnan(t["value"]) and "zero-force baseline" in t["note"]
    assert not rows.loc[("schnet", "parameters (N)"), "identified"]  # one size: no series


def test_pages_show_the_checks_of_a_study_with_roles(tmp_path):
    """A sweep file with "lr" and "budget" points, through results() to the pages' check sections."""
    from conftest import build_synthetic_study

    from matscale.study import pages

    seeds = [0, 1, 2]
    spec = {"name": "roles", "base": {"epochs": 3, "batch_size": 16, "val_frac": 0.1, "lr": 0.001,
                                      "max_steps": 40},
            "grid": {"arch": {"schnet": {"size": ["xs"], "frac": [0.01, 0.02, 0.05, 0.1, 0.2], "seed": seeds}}},
            "points": [{"arch": "schnet", "size": "xs", "frac": 0.05, "seed": s, "lr": lr, "role": "lr"}
                       for lr in (1e-4, 1e-2) for s in seeds]
            + [{"arch": "schnet", "size": "xs", "frac": f, "seed": s, "max_steps": 20, "role": "budget"}
               for f in (0.01, 0.02, 0.05, 0.1, 0.2) for s in seeds]}
    path = build_synthetic_study(tmp_path, spec, skip=set(), fail=set())
    root = tmp_path / "runs"
    table = pages.R.results(path, root)
    assert set(table["role"]) == {"main", "lr", "budget"} and set(table["max_steps"]) == {20, 40}
    lr = pages.training_dynamics(path, root).tables["lr_check"].reset_index()
    assert sorted(lr["lr"]) == [1e-4, 1e-3, 1e-2] and (lr["n"] == 3).all() and (lr["steps"] == 40).all()
    data = pages.data_scaling(path, root)
    budget = data.tables["budget"].loc["schnet"]
    assert "alpha (40 steps)" in budget.index and "alpha (20 steps)" in budget.index and budget["points"] == 5
    assert budget["alpha (40 steps)"][0].isdigit() or budget["alpha (40 steps)"].startswith("-")
    assert budget["verdict"] in ("alpha changes beyond its uncertainty", "alpha does not change beyond its uncertainty")
    s = F.scaling(table, "data", ["schnet"])["schnet"]
    assert set(s.runs["role"]) == {"main"} and s.sigma is not None  # three seeds: weighted
