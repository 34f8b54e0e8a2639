"""matscale.study.pages: one library call per book page, on the synthetic study of conftest.py
(true exponents known, one planned run missing, one failed). The notebooks only call these."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from matscale import study as studies
from matscale.study import pages
from matscale.study.tables import equivariance_points


@pytest.fixture(scope="module")
def built(synthetic_study):
    path, root = synthetic_study
    names = ["study", "training_dynamics", "data_scaling", "parameter_scaling", "compute_scaling",
             "joint_scaling", "architectures", "equivariance"]
    return {name: getattr(pages, name)(path, root) for name in names}


def test_every_page_has_its_sections_tables_and_charts(built):
    expect = {  # page -> (sections shown by its notebook, one table, one chart)
        "study": (["status", "file", "plan", "progress", "grid", "runs"], "plan", "study_grid"),
        "training_dynamics": (["status", "archs", "errors"], "errors", "dynamics_schnet_components"),
        "data_scaling": (["status", "summary", "fits", "laws"], "summary", "data_scaling"),
        "parameter_scaling": (["status", "summary", "fits", "laws"], "summary", "parameter_scaling"),
        "compute_scaling": (["status", "summary", "all", "archs"], "frontier", "compute_all"),
        "joint_scaling": (["status", "joint", "allocation", "extrapolation", "extrapolation_charts"],
                          "exponents", "extrapolation_transformer_params"),
        "architectures": (["status", "comparison", "exponents", "best"], "comparison", "exponents"),
        "equivariance": (["status", "summary", "charts", "runs"], "medians", "equivariance_forces"),
    }
    for name, (sections, table, chart) in expect.items():
        page = built[name]
        assert set(sections) <= set(page.sections), (name, list(page.sections))
        assert isinstance(page.tables[table], pd.DataFrame) and len(page.tables[table]), (name, table)
        assert page.charts[chart].to_dict()["$schema"], (name, chart)
        assert "planned runs" in page.text
        # no printed reports: parameters are tables, warnings one short note per fit
        assert not page._items("print"), name
        assert "[[" not in page.text and "warning:" not in page.text and "NO ERROR BARS" not in page.text, name
    laws = built["data_scaling"].tables["parameters_schnet"]
    assert list(laws.columns) == ["value", "stderr", "ci_low", "ci_high", "identified"]
    assert {"forecast", "terms", "budget"} <= set(built["data_scaling"].sections)
    assert "lr" in built["training_dynamics"].sections


def test_fits_on_the_pages_recover_the_true_exponents_with_uncertainty(built):
    summary = built["data_scaling"].tables["summary"]
    assert (summary["estimate"].str.contains("±")).all()
    frontier = built["compute_scaling"].tables["frontier"]
    assert frontier["gamma"].str.contains("±").all()
    alloc = built["joint_scaling"].tables["exponents"]  # the identified joint law: test_study.py's grid study
    assert alloc.loc["schnet", "a (N* ∝ C^a)"] == "—"
    assert "not a grid" in alloc.loc["schnet", "interval method"]


def test_study_page_costs_use_the_sweep_files_parallelism(synthetic_study, tmp_path):
    path, root = synthetic_study
    spec = yaml.safe_load(path.read_text())
    table = studies.results(path, root)
    wall_min = table.loc[table["finished"], "wall_s"].sum() / 60
    one = pages.study(path, root)  # no local.max_parallel: one run at a time
    assert f"({wall_min:.1f} minutes with 1 run(s) at a time)" in one.text
    three = tmp_path / "three.yaml"
    three.write_text(yaml.safe_dump({**spec, "local": {"max_parallel": 3}}, sort_keys=False))
    assert f"({wall_min / 3:.1f} minutes with 3 run(s) at a time)" in pages.study(three, root).text
    assert f"({wall_min / 5:.1f} minutes with 5 run(s)" in pages.study(path, root, parallel=5).text


def test_equivariance_points_average_seeds_per_setting(synthetic_study):
    path, root = synthetic_study
    table = studies.results(path, root)
    eq = studies.equivariance(table)
    pts = equivariance_points(eq, table, ["transformer"], "data")
    runs = eq[eq["run_id"].isin(studies.series(table, "transformer", "data")["run_id"])]
    for frac, group in runs.groupby("frac"):
        row = pts.iloc[(pts["training_structures"] - group["n_train"].mean()).abs().argmin()]
        assert row["forces_rel"] == pytest.approx(group["forces_rel"].mean())
        assert row["sigma"] == pytest.approx(group["forces_rel"].std() if len(group) > 1 else 0.0)
    assert np.isfinite(pts["forces_rel"]).all() and len(pts) == runs["frac"].nunique()


def test_show_displays_a_section_and_saves_its_charts(built, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MATSCALE_FIGURES_DIR", str(tmp_path))
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    built["data_scaling"].show("fits")
    built["data_scaling"].show("laws")
    assert (tmp_path / "data_scaling.svg").is_file()
    assert capsys.readouterr().out == ""  # nothing printed: the fits are tables
    assert any(isinstance(o, pd.DataFrame) and "ci_low" in o.columns for o in shown)
