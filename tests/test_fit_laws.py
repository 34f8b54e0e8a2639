"""matscale.fit: laws, estimators, uncertainty plumbing, model selection, frontier, errors."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from matscale.errors import FitError
from matscale.fit import (
    LAWS, aggregate_replicates, compare_laws, compute_frontier, compute_optimal, fit_frontier, fit_joint,
    fit_law, get_law,
)

TRUE = {
    "power": {"A": 50.0, "alpha": 0.3},
    "power_floor": {"E": 1.0, "A": 30.0, "alpha": 0.4},
    "broken": {"alpha1": 0.15, "alpha2": 0.45, "x_c": 3e4},
    "broken_amp": {"A": 2.0, "alpha1": 0.1, "alpha2": 0.5, "x_c": 1e4},
    "broken_floor": {"E": 0.5, "A": 2.0, "alpha1": 0.1, "alpha2": 0.6, "x_c": 1e4},
    "frontier": {"L_inf": 2.0, "F": 1e3, "gamma": 0.15},
}
X = {"power": np.geomspace(1e3, 1e7, 12), "power_floor": np.geomspace(1e3, 1e8, 15),
     "broken": np.geomspace(1e3, 1e6, 12), "broken_amp": np.geomspace(1e2, 1e6, 14),
     "broken_floor": np.geomspace(1e2, 1e7, 20), "frontier": np.geomspace(1e15, 1e21, 14)}


def _curve(law, params, x):
    """The law evaluated from reported parameters, written out independently of matscale."""
    p = params
    if law == "power":
        return p["A"] * x ** -p["alpha"]
    if law == "power_floor":
        return p["E"] + p["A"] * x ** -p["alpha"]
    if law == "frontier":
        return p["L_inf"] + p["F"] * x ** -p["gamma"]
    core = (p["x_c"] / x) ** p["alpha2"] * (1 + p["x_c"] / x) ** (p["alpha1"] - p["alpha2"])
    return p.get("E", 0.0) + p.get("A", 1.0) * core


def test_broken_law_slopes_below_and_above_the_break():
    """alpha1 is the log-log slope for x << x_c, alpha2 for x >> x_c (optimetal: 0.15 < 0.42)."""
    p = {"alpha1": 0.15, "alpha2": 0.42, "x_c": 10**4.72}
    slope = lambda x: -np.gradient(np.log(_curve("broken", p, x)), np.log(x))  # noqa: E731
    assert slope(np.geomspace(1e-2, 1e-1, 5))[2] == pytest.approx(0.15, abs=2e-4)
    assert slope(np.geomspace(1e11, 1e12, 5))[2] == pytest.approx(0.42, abs=2e-4)
    fit = fit_law(X["broken"], _curve("broken", TRUE["broken"], X["broken"]), "broken", ci="none")
    law = get_law("broken")
    assert law.reported[0].meaning.startswith("slope below") and law.reported[1].meaning.startswith("slope above")
    assert np.allclose(fit.predict(X["broken"]), _curve("broken", TRUE["broken"], X["broken"]), rtol=1e-8)


@pytest.mark.parametrize("law", list(TRUE))
def test_noiseless_data_give_the_true_parameters(law):
    x = X[law]
    fit = fit_law(x, _curve(law, TRUE[law], x), law, ci="none")
    for name, value in TRUE[law].items():
        assert fit[name].value == pytest.approx(value, rel=1e-5), name
    assert fit.n_points == len(x) and fit.n_params == len(TRUE[law])


def test_internal_reported_round_trip_and_jacobian():
    law = get_law("joint")
    ln_ref = {"N": np.log(3e8), "D": np.log(2e10)}
    true = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 2000.0, "beta": 0.28}
    theta = law.to_internal(true, ln_ref)
    assert np.allclose(law.to_reported(theta, ln_ref), list(true.values()))
    J = law.jacobian(theta, ln_ref)
    h = 1e-6
    num = np.column_stack([(law.to_reported(theta + h * e, ln_ref) - law.to_reported(theta - h * e, ln_ref)) / (2 * h)
                           for e in np.eye(len(theta))])
    assert np.allclose(J, num, rtol=1e-5)


def test_result_does_not_depend_on_the_starting_point():
    rng = np.random.default_rng(3)
    x = X["broken"]
    y = _curve("broken", TRUE["broken"], x) * np.exp(rng.normal(0, 0.01, x.size))
    ref = fit_law(x, y, "broken", ci="none")
    assert ref.n_agree >= 2  # several starts reach the same optimum
    others = [fit_law(x, y, "broken", ci="none", start=start)  # a bad guess is one of the starts
              for start in ({"alpha1": 0.9, "alpha2": 0.01, "x_c": 2e3}, {"alpha1": -0.2, "alpha2": 1.5, "x_c": 5e5})]
    others += [fit_law(x, y, "broken", ci="none", n_starts=n) for n in (1, 8)]
    for other in others:
        for name in ref.params:
            assert other[name].value == pytest.approx(ref[name].value, rel=1e-4)


def test_joint_fit_and_compute_optimal_match_a_numerical_optimum():
    rng = np.random.default_rng(0)
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 6), np.geomspace(1e9, 1e12, 6)))
    true = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 2000.0, "beta": 0.28}
    y = true["E"] + true["A"] * N ** -true["alpha"] + true["B"] * D ** -true["beta"]
    y = y * np.exp(rng.normal(0, 0.003, N.size))
    fit = fit_joint(N, D, y, log=True, ci="wald")
    for name, value in true.items():
        p = fit[name]
        assert p.ci_low <= value <= p.ci_high, name
    opt = compute_optimal(fit, C=[1e21, 1e23])
    v = fit.values
    assert opt["a"] == pytest.approx(v["beta"] / (v["alpha"] + v["beta"]))
    assert opt["a"] + opt["b"] == pytest.approx(1.0)
    assert opt["a_ci"][0] < opt["a"] < opt["a_ci"][1] and opt["a_stderr"] > 0
    for C, n_opt in zip([1e21, 1e23], opt["N_opt"]):  # brute-force the allocation at fixed compute
        loss = lambda lnN: fit.predict([np.exp(lnN)], [C / (6 * np.exp(lnN))])[0]  # noqa: E731
        best = optimize.minimize_scalar(loss, bounds=(np.log(1e5), np.log(1e15)), method="bounded",
                                        options={"xatol": 1e-9})
        assert np.exp(best.x) == pytest.approx(n_opt, rel=1e-4)
    assert np.allclose(opt["N_opt"] * opt["D_opt"] * 6, [1e21, 1e23])


def test_result_outputs_json_table_band():
    rng = np.random.default_rng(1)
    x = X["power_floor"]
    y = _curve("power_floor", TRUE["power_floor"], x) + rng.normal(0, 0.01, x.size)
    fit = fit_law(x, y, "power_floor", sigma=np.full(x.size, 0.01))
    d = json.loads(fit.to_json())
    assert d["law"] == "power_floor" and d["n_points"] == x.size
    assert set(d["params"]) == {"E", "A", "alpha"}
    for p in d["params"].values():
        assert set(p) == {"value", "stderr", "ci95"}
        assert p["ci95"][0] < p["value"] < p["ci95"][1] and p["stderr"] > 0
    assert d["aicc"] == pytest.approx(d["aic"] + 2 * 3 * 4 / (x.size - 4))
    assert d["ci_method"] == "profile likelihood" and d["errorbars"] is True
    text = fit.table()
    assert "power_floor" in text and "alpha" in text and "95% CI (profile likelihood)" in text
    assert abs(fit.correlations.loc["A", "alpha"]) <= 1 and fit.correlations.loc["A", "A"] == pytest.approx(1)
    # bands: contain the truth near the data, widen when extrapolating, prediction >= confidence
    xs = np.geomspace(1e3, 1e11, 30)
    lo, hi = fit.band(xs)
    assert np.all(lo < fit.predict(xs)) and np.all(fit.predict(xs) < hi)
    inside = xs <= 1e8
    truth = _curve("power_floor", TRUE["power_floor"], xs)
    assert np.mean((lo[inside] <= truth[inside]) & (truth[inside] <= hi[inside])) > 0.8
    width = np.log(hi / lo)
    assert width[-1] > width[np.argmin(np.abs(xs - 1e5))]
    plo, phi = fit.band(xs, kind="prediction", noise_sigma=0.01)
    assert np.all(plo <= lo + 1e-12) and np.all(phi >= hi - 1e-12)


def test_bootstrap_intervals_and_bands():
    rng = np.random.default_rng(2)
    x = X["power"]
    y = _curve("power", TRUE["power"], x) * np.exp(rng.normal(0, 0.02, x.size))
    fit = fit_law(x, y, "power", log=True, bootstrap=60, seed=4)
    assert fit.ci_method.startswith("bootstrap") and len(fit.samples) >= 50
    assert fit["alpha"].ci_low < 0.3 < fit["alpha"].ci_high
    again = fit_law(x, y, "power", log=True, bootstrap=60, seed=4)
    assert again["alpha"].ci == fit["alpha"].ci  # seeded
    lo, hi = fit.band(x)
    assert np.all(lo < hi)
    prof = fit_law(x, y, "power", log=True)  # profile; in log space the model is linear
    assert prof["alpha"].ci_low == pytest.approx(fit["alpha"].ci_low, abs=0.02)


def test_replicates_average_seeds_and_bootstrap_over_seeds():
    rng = np.random.default_rng(5)
    x = np.repeat(X["broken"], 3)
    truth = _curve("broken", TRUE["broken"], x)
    y = truth * (1 + rng.normal(0, 0.01, x.size))
    agg = aggregate_replicates(pd.DataFrame({"x": x, "y": y}), "x", "y")
    assert list(agg.columns) == ["x", "mean", "std", "n"] and (agg["n"] == 3).all()
    assert np.allclose(agg["std"], [np.std(y[x == v], ddof=1) for v in agg["x"]])
    fit = fit_law(x, y, "broken", replicates=True, bootstrap=40)
    assert fit.n_points == len(X["broken"]) and "sigma" in fit.data and "n_runs" in fit.data
    assert fit["alpha2"].ci_low < fit["alpha2"].value < fit["alpha2"].ci_high
    manual = fit_law(agg["x"], agg["mean"], "broken", sigma=agg["std"], ci="none")
    assert manual["alpha1"].value == pytest.approx(fit["alpha1"].value, rel=1e-6)


def test_huber_is_robust_to_an_outlier():
    rng = np.random.default_rng(6)
    x = X["power"]
    y = _curve("power", TRUE["power"], x) * np.exp(rng.normal(0, 0.005, x.size))
    y[0] *= 2.0  # one bad run at the smallest size
    lsq = fit_law(x, y, "power", log=True, ci="none")
    hub = fit_law(x, y, "power", log=True, loss="huber", ci="none")
    assert abs(hub["alpha"].value - 0.3) < 0.005 and abs(lsq["alpha"].value - 0.3) > 0.02
    assert not hub.errorbars and "bootstrap" not in hub.ci_method  # ci="none": no uncertainty, and it says so
    assert "NO ERROR BARS" in hub.table()


def test_compare_laws_ranks_by_aicc():
    rng = np.random.default_rng(7)
    x = X["broken_floor"]
    y = _curve("power_floor", {"E": 0.8, "A": 20.0, "alpha": 0.5}, x) + rng.normal(0, 0.002, x.size)
    table, fits = compare_laws(x, y, sigma=np.full(x.size, 0.002), return_fits=True)
    assert set(table["law"]) == {"power", "power_floor", "broken", "broken_amp", "broken_floor"}
    assert table["rank"].iloc[0] == 1 and table["delta_aicc"].iloc[0] == 0
    assert table.set_index("law").loc["power_floor", "aicc"] < table.set_index("law").loc["power", "aicc"] - 10
    assert table["weight"].sum() == pytest.approx(1.0)
    assert (np.diff(table["aicc"]) >= 0).all()
    assert fits["power"].aicc == pytest.approx(table.set_index("law").loc["power", "aicc"])


def test_frontier_is_the_lower_envelope_and_fits():
    rng = np.random.default_rng(8)
    rows = []
    for run, n in enumerate(np.geomspace(1e6, 1e9, 8)):  # each run: loss falls with compute to its own plateau
        C = np.geomspace(1e15, 1e21, 25)
        plateau = 2.0 + 300 * n**-0.3
        L = plateau + 1e3 * (C / (n / 1e6)) ** -0.15 + rng.normal(0, 1e-3, C.size)
        rows += [{"flops": c, "loss": l, "run": f"r{run}"} for c, l in zip(C, L)]
    curves = pd.DataFrame(rows)
    front = compute_frontier(curves, "flops", "loss", "run")
    assert (np.diff(front["loss"]) < 0).all() and (np.diff(front["flops"]) >= 0).all()
    for _, row in front.iterrows():  # nothing cheaper is better
        assert not ((curves["flops"] <= row["flops"]) & (curves["loss"] < row["loss"])).any()
    assert front["run"].nunique() > 1
    fit = fit_frontier(curves, "flops", "loss", "run", bootstrap=30)
    assert set(fit.params) == {"L_inf", "F", "gamma"} and fit.errorbars
    assert fit["gamma"].value > 0 and fit.ci_method.startswith("bootstrap")
    assert list(fit.data.columns[:2]) == ["x", "y"] and "run" in fit.data


def test_no_error_bars_is_never_silent(monkeypatch):
    x = np.geomspace(1e3, 1e6, 6)
    fit = fit_law(x, 3.0 * x**-0.2, "power_floor", ci="wald")  # no floor in the data: E ends on 0
    assert any("E sits on its bound" in w for w in fit.warnings) and "E sits on its bound" in fit.table()

    from matscale.fit import engine
    real = engine.local_fit

    def without_covariance(problem, theta0):  # what lmfit returns when it cannot invert the Hessian
        res = real(problem, theta0)
        res.errorbars, res.covar = False, None
        return res

    monkeypatch.setattr(engine, "local_fit", without_covariance)
    y = _curve("power", TRUE["power"], X["power"]) * np.exp(np.random.default_rng(0).normal(0, 0.01, 12))
    fit = fit_law(X["power"], y, "power", log=True)
    assert fit.errorbars is False and "could not estimate the covariance" in fit.errorbars_note
    assert fit["alpha"].stderr is None and fit["alpha"].ci_low < 0.3 < fit["alpha"].ci_high  # profile still works
    assert "NO ERROR BARS" in fit.table() and fit.to_dict()["errorbars"] is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": [1e3, 1e4], "y": [1.0, 0.5], "law": "power_floor"}, "at least 4"),
        ({"x": [1e3, 1e4, 0.0, 1e6], "y": [1.0, 0.9, 0.8, 0.7]}, "non-positive"),
        ({"x": [1e3, 1e4, 1e5, 1e6], "y": [1.0, -0.9, 0.8, 0.7]}, "non-positive"),
        ({"x": [1e3, 1e4, np.nan, 1e6], "y": [1.0, 0.9, 0.8, 0.7]}, "NaN"),
        ({"x": [1e3, 1e4, 1e5], "y": [1.0, 0.9, 0.8, 0.7]}, "different lengths"),
        ({"x": [1e3, 1e4, 1e5, 1e6], "y": [1.0, 0.9, 0.8, 0.7], "law": "nope"}, "unknown law"),
        ({"x": [1e3, 1e3, 1e3, 1e3], "y": [1.0, 0.9, 0.8, 0.7]}, "distinct sizes"),
        ({"x": [1e3, 1e4, 1e5, 1e6], "y": [1.0, 0.9, 0.8, 0.7], "loss": "huber", "ci": "profile"}, "bootstrap"),
        ({"x": [1e3, 1e3, 1e4, 1e4, 1e5, 1e5], "y": [1, 1, .9, .8, .7, .6], "replicates": True}, "spread is 0"),
        ({"x": [1e3, 1e4, 1e5, 1e6], "y": [1.0, 0.9, 0.8, 0.7], "replicates": True}, "single run"),
        ({"x": ["a", "b", "c", "d"], "y": [1.0, 0.9, 0.8, 0.7]}, "numeric"),
    ],
)
def test_clear_errors(kwargs, message):
    kwargs = dict(kwargs)
    with pytest.raises(FitError, match=message):
        fit_law(kwargs.pop("x"), kwargs.pop("y"), **kwargs)


def test_non_convergence_raises_fit_error(monkeypatch):
    from matscale.fit import engine

    class Failed:
        success, message, params, errorbars, covar = False, "max evaluations", {}, False, None

    monkeypatch.setattr(engine, "local_fit", lambda problem, theta0: Failed())
    with pytest.raises(FitError, match="did not converge"):
        fit_law(X["power"], _curve("power", TRUE["power"], X["power"]), "power")


def test_every_law_is_documented():
    for name, law in LAWS.items():
        assert law.formula.startswith("L") and law.description, name
        assert all(r.meaning for r in law.reported), name
