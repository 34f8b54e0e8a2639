"""matscale.fit reproduces two published scaling-law fits (data and sources: tests/data/README.md)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matscale.fit import compare_laws, compute_optimal, fit_joint, fit_law

DATA = Path(__file__).parent / "data"

# Besiroglu et al. 2024 (Chinchilla replication): estimate and 95% CI
CHINCHILLA = {"E": (1.817, 1.769, 1.871), "A": (482.0, 285, 744), "B": (2085, 1042, 5810),
              "alpha": (0.3478, 0.317, 0.373), "beta": (0.3658, 0.331, 0.415)}

# Grossmann et al. (optimetal): broken law on the data sweeps, power law + floor on the width sweeps
MODELS = ["2b/variant1", "2b/variant2", "3b"]
BROKEN = {"2b/variant1": (0.15, 0.42, 4.72), "2b/variant2": (0.18, 0.39, 4.62), "3b": (0.17, 0.38, 4.43)}
FLOOR = {"2b/variant1": (0.53, 1.01, 4.40), "2b/variant2": (0.58, 1.03, 4.33), "3b": (0.41, 0.89, 3.95)}
# their AICc tables (n ln(RSS/n) + 2k + 2k(k+1)/(n-k-1) on unweighted residuals)
AICC_DATA = {"2b/variant1": {"power": -36.20, "power_floor": -29.20, "broken": -57.74, "broken_amp": -49.89},
             "2b/variant2": {"power": -34.87, "power_floor": -27.87, "broken": -44.88, "broken_amp": -38.72},
             "3b": {"power": -39.91, "power_floor": -32.91, "broken": -57.70, "broken_amp": -48.48}}
AICC_FLOOR = {"2b/variant1": -60.97, "2b/variant2": -54.73, "3b": -51.17}
# their +- (curve_fit, absolute_sigma=False): alpha1, alpha2 (data); alpha, L_inf (width)
PLUS_MINUS = {"2b/variant1": (0.00, 0.01, 0.03, 0.00), "2b/variant2": (0.01, 0.03, 0.06, 0.01),
              "3b": (0.01, 0.02, 0.09, 0.02)}


@pytest.fixture(scope="module")
def chinchilla():
    df = pd.read_csv(DATA / "chinchilla_svg_extracted_data.csv")
    df = df.sort_values("loss").iloc[:-5]  # the authors drop the 5 highest losses
    N = df["Model Size"].to_numpy()
    D = df["Training FLOP"].to_numpy() / (6 * N)
    return fit_joint(N, D, df["loss"].to_numpy(), loss="huber", huber_delta=1e-3, log=True,
                     bootstrap=40, seed=0)


def test_chinchilla_joint_fit_is_inside_the_published_intervals(chinchilla):
    fit = chinchilla
    assert fit.n_points == 240 and fit.n_agree >= 2
    for name, (_, lo, hi) in CHINCHILLA.items():
        assert lo <= fit[name].value <= hi, (name, fit[name].value)
    opt = compute_optimal(fit)
    assert abs(opt["a"] - 0.513) < 0.03
    assert opt["a_ci"][0] < 0.513 < opt["a_ci"][1]
    for name, (published, _, _) in CHINCHILLA.items():  # our bootstrap intervals hold their estimates
        assert fit[name].ci_low < published < fit[name].ci_high, name
    assert fit.ci_method.startswith("bootstrap")


@pytest.fixture(scope="module")
def optimetal():
    return pd.read_csv(DATA / "optimetal_scaling_results.csv")


def _unweighted_aicc(fit):
    n, k = fit.n_points, fit.n_params
    rss = float(((fit.data["y"] - fit.data["fitted"]) ** 2).sum())
    return n * np.log(rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


@pytest.mark.parametrize("model", MODELS)
def test_optimetal_data_sweep_broken_law(optimetal, model):
    d = optimetal[(optimetal["sweep"] == "data") & (optimetal["model"] == model)]
    fit = fit_law(d["size_key"], d["val_loss"], "broken", replicates=True)
    a1, a2, log_dc = BROKEN[model]
    assert fit["alpha1"].value == pytest.approx(a1, abs=0.02)
    assert fit["alpha2"].value == pytest.approx(a2, abs=0.02)
    assert np.log10(fit["x_c"].value) == pytest.approx(log_dc, abs=0.1)
    assert fit["alpha1"].value < fit["alpha2"].value  # the slope steepens above the break
    assert fit.errorbars and fit.ci_method == "profile likelihood"
    for name in ("alpha1", "alpha2", "x_c"):
        p = fit[name]
        assert p.ci_low < p.value < p.ci_high

    table, fits = compare_laws(d["size_key"], d["val_loss"], replicates=True, return_fits=True,
                               laws=["power", "power_floor", "broken", "broken_amp"])
    assert table["law"].iloc[0] == "broken", table
    for law, published in AICC_DATA[model].items():  # the same fits as the authors' (their AICc formula)
        assert _unweighted_aicc(fits[law]) == pytest.approx(published, abs=0.01), law


@pytest.mark.parametrize("model", MODELS)
def test_optimetal_parameter_sweep_power_floor(optimetal, model):
    d = optimetal[(optimetal["sweep"] == "parameter") & (optimetal["model"] == model)]
    fit = fit_law(d["num_parameter"], d["val_loss"], "power_floor", replicates=True)
    alpha, l_inf, log_n0 = FLOOR[model]
    assert fit["alpha"].value == pytest.approx(alpha, abs=0.02)
    assert fit["E"].value == pytest.approx(l_inf, abs=0.01)
    # (N_0/N)^a + L_inf is E + A N^-alpha with A = N_0^alpha
    assert np.log10(fit["A"].value) / fit["alpha"].value == pytest.approx(log_n0, abs=0.1)
    assert _unweighted_aicc(fit) == pytest.approx(AICC_FLOOR[model], abs=0.01)


@pytest.mark.parametrize("model", MODELS)
def test_optimetal_standard_errors_with_relative_sigma(optimetal, model):
    """With sigma as relative weights (covariance rescaled by chi2/dof, as the authors did)
    the standard errors round to the published +- values."""
    data = optimetal[(optimetal["sweep"] == "data") & (optimetal["model"] == model)]
    width = optimetal[(optimetal["sweep"] == "parameter") & (optimetal["model"] == model)]
    broken = fit_law(data["size_key"], data["val_loss"], "broken", replicates=True, absolute_sigma=False, ci="none")
    floor = fit_law(width["num_parameter"], width["val_loss"], "power_floor", replicates=True,
                    absolute_sigma=False, ci="none")
    ours = (broken["alpha1"].stderr, broken["alpha2"].stderr, floor["alpha"].stderr, floor["E"].stderr)
    assert [round(v, 2) for v in ours] == list(PLUS_MINUS[model])
