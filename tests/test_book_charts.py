"""Chart builders: valid Vega-Lite specs with the expected layers and encodings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from matscale import charts
from matscale.errors import DataError


def metrics_table(n=6, run=None):
    """Columns as written by the training loop (train_loss, train_loss_<part>, physical MAEs)."""
    e = np.arange(1, n + 1, dtype=float)
    df = pd.DataFrame({
        "epoch": e, "step": 10 * e, "samples_seen": 100 * e, "flops": 1e12 * e, "wall_s": 3 * e,
        "train_loss": 4 / e, "val_loss": 4.4 / e,
        "train_loss_energy": 1 / e, "val_loss_energy": 1.1 / e,
        "train_loss_force": 2 / e, "val_loss_force": 2.2 / e,
        "train_loss_stress_iso": 0.5 / e, "val_loss_stress_iso": 0.55 / e,
        "train_loss_stress_aniso": 0.5 / e, "val_loss_stress_aniso": 0.55 / e,
        "train_energy_mae_eV_atom": 0.01 / e, "val_energy_mae_eV_atom": 0.012 / e,
    })
    df.loc[0, "val_loss"] = np.nan  # a row without validation
    if run is not None:
        df.insert(0, "run_id", run)
    return df


def data_of(spec: dict) -> list[dict]:
    """All inline rows of a spec (altair moves data to top-level `datasets`)."""
    return [row for rows in spec.get("datasets", {}).values() for row in rows]


class PowerFit:
    """Stand-in for a fitted law: predict(x) and band(x, level) like matscale.fit's results."""

    def __init__(self, a=2.0, alpha=0.3):
        self.a, self.alpha = a, alpha

    def predict(self, x):
        return self.a * np.asarray(x, dtype=float) ** -self.alpha

    def band(self, x, *, level=0.95):
        p = self.predict(x)
        return p * (1 - 0.1 * level), p * (1 + 0.1 * level)


# -- loss curves ------------------------------------------------------------------------------
def test_loss_curves_single_run_panels_and_splits():
    spec = charts.loss_curves(metrics_table(), x="epoch").to_dict()
    assert spec["encoding"]["facet"]["field"] == "metric"
    assert spec["encoding"]["color"]["field"] == "split"
    assert spec["encoding"]["y"]["scale"]["type"] == "log"
    rows = data_of(spec)
    assert {r["metric"] for r in rows} == {"total", "energy", "force", "stress iso", "stress aniso"}
    assert {r["split"] for r in rows} == {"train", "val"}
    assert spec["encoding"]["facet"]["sort"][0] == "total"
    # the NaN validation row is dropped, not plotted as zero
    assert sum(r["metric"] == "total" and r["split"] == "val" for r in rows) == 5


def test_loss_curves_total_only_and_linear():
    spec = charts.loss_curves(metrics_table(), components=False, log_y=False).to_dict()
    assert {r["metric"] for r in data_of(spec)} == {"total"}
    assert spec["encoding"]["y"]["scale"].get("type") != "log"


def test_loss_curves_many_runs_against_flops():
    df = pd.concat([metrics_table(run="a"), metrics_table(run="b")], ignore_index=True)
    spec = charts.loss_curves(df, x="flops").to_dict()
    assert spec["encoding"]["color"]["field"] == "run_id"
    assert spec["encoding"]["strokeDash"]["field"] == "split"
    assert spec["encoding"]["x"]["scale"]["type"] == "log"
    assert {r["run_id"] for r in data_of(spec)} == {"a", "b"}


def test_loss_curves_brief_style_columns_and_explicit_metrics():
    df = pd.DataFrame({"step": [1, 2], "train_loss": [2.0, 1.0], "val_loss": [2.5, 1.5],
                       "train_energy": [0.2, 0.1], "val_forces": [0.3, 0.2]})
    assert charts.metric_names(df) == ["loss", "energy", "forces"]
    spec = charts.loss_curves(metrics_table(), metrics_to_plot=["energy_mae_eV_atom"]).to_dict()
    assert {r["metric"] for r in data_of(spec)} == {"energy mae (eV/atom)"}


def test_loss_curves_bad_input():
    with pytest.raises(DataError, match="no train_loss or val_loss"):
        charts.loss_curves(pd.DataFrame({"epoch": [1], "train_x": [1.0]}))
    with pytest.raises(DataError, match="lacks column"):
        charts.loss_curves(metrics_table(), x="tokens")
    with pytest.raises(DataError, match="no train_/val_"):
        charts.loss_curves(metrics_table(), metrics_to_plot=["nonsense"])


# -- parity -----------------------------------------------------------------------------------
def test_parity_layers_mae_and_subsampling():
    rng = np.random.default_rng(1)
    true = rng.normal(size=(400, 3))
    pred = true + 0.5
    chart = charts.parity(true, pred, "force", "eV/Å", max_points=300)
    spec = chart.to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["circle", "line"]
    assert "MAE = 0.5 eV/Å" in spec["title"]["subtitle"] and "n = 1200" in spec["title"]["subtitle"]
    assert len(data_of(spec)) == 300 + 2  # sub-sampled points plus the two ends of y = x
    domain = spec["layer"][0]["encoding"]["x"]["scale"]["domain"]
    assert domain == spec["layer"][0]["encoding"]["y"]["scale"]["domain"]


def test_parity_bad_input():
    with pytest.raises(DataError, match="true has 3 values but pred has 2"):
        charts.parity([1, 2, 3], [1, 2], "energy", "eV/atom")
    with pytest.raises(DataError, match="no finite"):
        charts.parity([np.nan], [1.0], "energy", "eV/atom")


# -- histograms -------------------------------------------------------------------------------
def test_histogram_groups_share_bins():
    rng = np.random.default_rng(2)
    values = np.r_[rng.normal(0, 1, 500), rng.normal(2, 1, 300)]
    groups = np.r_[["a"] * 500, ["b"] * 300]
    table = charts.histogram_table(values, bins=20, group=groups)
    assert table.groupby("group")["count"].sum().to_dict() == {"a": 500, "b": 300}
    edges_a = table[table.group == "a"]["bin_left"].to_numpy()
    assert np.array_equal(edges_a, table[table.group == "b"]["bin_left"].to_numpy())
    spec = charts.histogram(values, "energy", "eV/atom", bins=20, group=groups, group_title="subset",
                            density=True).to_dict()
    assert spec["mark"]["type"] == "bar" and spec["encoding"]["color"]["field"] == "subset"
    assert spec["encoding"]["x"]["bin"] == "binned" and spec["encoding"]["x2"]["field"] == "bin_right"
    rows = data_of(spec)
    area = sum(r["height"] * (r["bin_right"] - r["bin_left"]) for r in rows if r["subset"] == "a")
    assert area == pytest.approx(1.0)


def hist_rows():
    rows = []
    for quantity in ("energy per atom (eV/atom)", "force norm (eV/Å)"):
        for subset in ("rattled-300", "aimd-from-PBE-1000-nvt"):
            for split in ("train", "val"):
                for i in range(4):
                    rows.append({"quantity": quantity, "subset": subset, "split": split,
                                 "bin_left": i, "bin_right": i + 1, "count": i + 1})
    return pd.DataFrame(rows)


def test_stats_histograms_panels():
    spec = charts.stats_histograms(hist_rows()).to_dict()
    assert spec["encoding"]["facet"]["field"] == "panel"  # quantity x split
    assert len({r["panel"] for r in data_of(spec)}) == 4
    assert spec["encoding"]["color"]["field"] == "subset"
    one = charts.stats_histograms(hist_rows(), quantity="force norm (eV/Å)").to_dict()
    assert one["encoding"]["facet"]["field"] == "split"
    assert one["encoding"]["x"]["title"] == "force norm (eV/Å)"


def test_stats_histograms_bad_input():
    with pytest.raises(DataError, match="lacks column"):
        charts.stats_histograms(pd.DataFrame({"count": [1]}))
    with pytest.raises(DataError, match="available"):
        charts.stats_histograms(hist_rows(), quantity="stress")


# -- scaling fits and frontier ----------------------------------------------------------------
def test_scaling_fit_layers():
    pts = pd.DataFrame({"N": [1e3, 1e4, 1e5, 1e6], "val_loss": [0.8, 0.4, 0.2, 0.1],
                        "std": [0.05, 0.02, 0.3, 0.01]})
    spec = charts.scaling_fit(pts, "N", "val_loss", PowerFit(), sigma="std", extend=2).to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["area", "line", "rule", "point"]
    assert all(layer["encoding"]["x"]["scale"]["type"] == "log" for layer in spec["layer"])
    curve = [r for r in data_of(spec) if "fit" in r]
    assert min(r["x"] for r in curve) == pytest.approx(500) and max(r["x"] for r in curve) == pytest.approx(2e6)
    assert all(r["lower"] < r["fit"] < r["upper"] for r in curve)
    # the error bar of the point whose sigma exceeds its value is clipped above zero
    bars = [r for r in data_of(spec) if "y_lo" in r]
    assert all(r["y_lo"] > 0 for r in bars)


def test_scaling_fit_groups_and_points_only():
    pts = pd.DataFrame({"D": [1e2, 1e3, 1e2, 1e3], "val_loss": [1.0, 0.5, 0.8, 0.3], "arch": ["a", "a", "b", "b"]})
    spec = charts.scaling_fit(pts, "D", "val_loss", {"a": PowerFit(), "b": PowerFit(1.5)}, color="arch",
                              band=False).to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["line", "point"]
    assert spec["layer"][0]["encoding"]["color"]["field"] == "arch"
    only = charts.scaling_fit(pts, "D", "val_loss").to_dict()
    assert [layer["mark"]["type"] for layer in only["layer"]] == ["point"]
    with pytest.raises(DataError, match="mapping"):
        charts.scaling_fit(pts, "D", "val_loss", PowerFit(), color="arch")
    with pytest.raises(DataError, match="predict"):
        charts.scaling_fit(pts, "D", "val_loss", {"a": object()}, color="arch")
    no_band = type("NoBand", (), {"predict": lambda self, x: PowerFit().predict(x)})()
    with pytest.raises(DataError, match="band"):
        charts.scaling_fit(pts, "D", "val_loss", {"a": no_band}, color="arch")


def test_scaling_fit_reference_lines():
    """Baselines are dashed horizontal rules with their label; values a log axis cannot show are dropped."""
    pts = pd.DataFrame({"N": [1e3, 1e4, 1e5], "val_loss": [0.8, 0.4, 0.2]})
    spec = charts.scaling_fit(pts, "N", "val_loss", PowerFit(),
                              reference={"linear baseline": 0.9, "nonsense": -1.0, "missing": float("nan")}).to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["area", "line", "point", "rule", "text"]
    rule, text = spec["layer"][3], spec["layer"][4]
    assert rule["mark"]["strokeDash"] and "x" not in rule["encoding"]  # spans the whole width
    assert text["encoding"]["text"]["field"] == "reference"
    refs = [r for r in data_of(spec) if "reference" in r]
    assert refs == [{"reference": "linear baseline", "val_loss": 0.9}]
    assert [layer["mark"]["type"] for layer in charts.scaling_fit(pts, "N", "val_loss", reference={}).to_dict()
            ["layer"]] == ["point"]


def test_frontier_layers():
    curves = pd.concat([metrics_table(run="small"), metrics_table(run="big").assign(flops=lambda d: d.flops * 10)])
    front = pd.DataFrame({"flops": [1e12, 2e13, 6e13], "val_loss": [4.0, 1.0, 0.7]})
    spec = charts.frontier(curves, front, PowerFit(), x="flops", y="val_loss").to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["line", "area", "line", "line", "point"]
    assert spec["layer"][0]["encoding"]["detail"]["field"] == "run_id"
    assert spec["layer"][3]["mark"]["interpolate"] == "step-after"
    with pytest.raises(DataError, match="run column"):
        charts.frontier(curves.drop(columns="run_id"), front)


def test_charts_take_the_fitting_engines_results():
    """scaling_fit and frontier draw matscale.fit's FitResult (predict + band) directly."""
    from matscale import fit

    rng = np.random.default_rng(3)
    runs = pd.DataFrame({"N": np.repeat(np.geomspace(1e3, 1e6, 6), 2)})
    runs["val_loss"] = (0.1 + 5 * runs["N"] ** -0.3) * (1 + 0.02 * rng.normal(size=len(runs)))
    agg = fit.aggregate_replicates(runs, "N", "val_loss")
    law = fit.fit_law(agg["N"], agg["mean"], "power_floor", sigma=agg["std"])
    spec = charts.scaling_fit(agg, "N", "mean", law, sigma="std").to_dict()
    curve = [r for r in data_of(spec) if "fit" in r]
    assert np.allclose([r["fit"] for r in curve], law.predict(np.array([r["x"] for r in curve])))
    assert all(r["lower"] <= r["fit"] <= r["upper"] for r in curve)

    curves = pd.concat([
        pd.DataFrame({"run": f"r{i}", "flops": np.geomspace(1e10, 1e13, 8) * n / 1e3,
                      "val_loss": 0.1 + n ** -0.2 + 50 * (np.geomspace(1e10, 1e13, 8) * n / 1e3) ** -0.2})
        for i, n in enumerate([1e3, 1e4, 1e5])
    ])
    front = fit.compute_frontier(curves, "flops", "val_loss", "run")
    result = fit.fit_frontier(curves, "flops", "val_loss", "run")
    spec = charts.frontier(curves, front, result, run="run").to_dict()
    assert [layer["mark"]["color"] for layer in spec["layer"] if layer["mark"]["type"] == "line"][1] == "firebrick"
    assert len([r for r in data_of(spec) if "fit" in r]) == 200
