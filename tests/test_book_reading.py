"""How the book reads: code hidden on the study pages, each page opening with a finding computed
from its fits (saying "not identified" when a fit is not), the Findings page's table of the study's
and the published exponents, the compute page's FLOPs-per-second caveat, and the dataset page's
composition of the validation selection."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from matscale.study import sentences as S

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
HIDDEN = {"remove-input", "hide-input"}
PAGE_NOTEBOOKS = ["findings", "study", "training_dynamics", "data_scaling", "parameter_scaling", "compute_scaling",
                  "architectures", "joint_scaling", "equivariance", "dataset", "teacher", "parity"]


def _shows_finding(source: str) -> bool:
    return '.show("finding")' in source or "**Finding.**" in source


# -- notebooks -------------------------------------------------------------------------------------------
def test_study_pages_hide_their_code_and_train_keeps_it():
    study_pages = sorted(p for p in BOOK.glob("*.ipynb") if p.stem != "train")
    assert len(study_pages) >= 10
    for path in study_pages:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                tags = set(cell.metadata.get("tags", []))
                assert tags & HIDDEN, f"{path.name}: a code cell shows its input: {cell.source[:60]!r}"
    train = nbformat.read(BOOK / "train.ipynb", as_version=4)
    shown = [c for c in train.cells if c.cell_type == "code" and not set(c.metadata.get("tags", [])) & HIDDEN]
    assert len(shown) >= 3, "train.ipynb should show the code that trains a model"


def test_every_page_opens_with_its_finding_and_findings_come_first_in_the_toc():
    for name in PAGE_NOTEBOOKS:
        nb = nbformat.read(BOOK / f"{name}.ipynb", as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), name
        shows = [c.source for c in nb.cells if c.cell_type == "code" and (".show(" in c.source or "display(" in c.source)]
        assert shows and _shows_finding(shows[0]), f"{name}: the first thing shown is not the finding"
        # nothing but the hidden set-up cells between the title and the finding
        first_md = next(i for i, c in enumerate(nb.cells[1:], 1) if c.cell_type == "markdown")
        assert any(_shows_finding(c.source) for c in nb.cells[1:first_md]), name
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    first = toc["parts"][0]["chapters"][0]["file"]
    assert first == "book/findings"


# -- findings sentences ------------------------------------------------------------------------------------
def _series(xs, ys, **kw):
    from matscale.study.fits import fit_series

    runs = pd.DataFrame({"n_train": np.asarray(xs, float), "val_loss": np.asarray(ys, float)})
    return fit_series(runs, "n_train", arch=kw.pop("arch", "schnet"), kind="data", laws=["power"], **kw)


def test_the_finding_gives_the_fitted_exponent_and_its_interval():
    xs = np.geomspace(300, 30000, 6)
    ys = 40 * xs ** -0.3 * np.exp(0.01 * np.random.default_rng(0).standard_normal(6))
    s = _series(xs, ys)
    e = S.exponent(s)
    assert e is not None and abs(e.value - 0.3) < 0.05 and e.low < e.value < e.high
    text = S.scaling({"schnet": s}, "data")
    assert f"SchNet's loss falls as D^-β with β = {e.text()}" in text and "not identified" not in text


def test_the_finding_says_not_identified_when_a_fit_is_not():
    too_few = _series([300, 3000], [10.0, 8.0])  # 2 points: no fit, with the library's reason
    assert not too_few.ok
    text = S.scaling({"equiformer_v2": too_few}, "data")
    assert "EquiformerV2's exponent is not identified" in text and "at least 3" in text
    prefixed = SimpleNamespace(ok=False, reason="not identified by these points: F: stderr above a decade")
    assert "is not identified (F: stderr above a decade)" in S.frontier({"schnet": prefixed})
    # a long list of reasons is condensed in the opening sentence (the tables below give it whole)
    long = SimpleNamespace(ok=False, reason="not identified by these points: power (alpha: stderr above |value|), "
                                            "power_floor (E: no finite stderr; A: 95% interval open)")
    assert "these points do not bound its parameters" in S.frontier({"schnet": long})
    from matscale.study.findings import reasons, study_rows

    rows = study_rows({"equiformer_v2": too_few}, {}, {"equiformer_v2": prefixed}, {})
    assert rows.loc[0, "data β (D)"] == "not identified" and rows.loc[0, "compute γ (C)"] == "not identified"
    why = reasons({"equiformer_v2": too_few}, {}, {"equiformer_v2": prefixed})
    assert why[0].startswith("EquiformerV2, data: ") and why[1] == "EquiformerV2, compute: F: stderr above a decade"
    # a fit that carries the identification flag (matscale.fit's): its reason is used
    flagged = SimpleNamespace(ok=True, identified=False, why_not="the floor sits on its bound", law="power_floor",
                              exponent="alpha", fit=None, points=pd.DataFrame())
    assert "not identified (the floor sits on its bound)" in S.scaling({"schnet": flagged}, "params")
    # ... or a law flagged by matscale.fit (a list of reasons) inside a fit that is otherwise ok
    law = SimpleNamespace(identified=False, why_not=["F has stderr > |value|", "L_inf on its bound"],
                          params={"gamma": SimpleNamespace(value=0.3, stderr=0.1, ci_low=0.1, ci_high=0.5)})
    held = SimpleNamespace(ok=True, front=None, fit=law)
    assert "not identified (F has stderr > |value|; L_inf on its bound)" in S.frontier({"schnet": held})
    # a fit without the flag whose exponent interval is open is not identified either
    p = SimpleNamespace(value=0.4, stderr=2.0, ci_low=-math.inf, ci_high=None)
    open_ci = SimpleNamespace(ok=True, law="power", exponent="alpha", fit=SimpleNamespace(params={"alpha": p}))
    assert S.exponent(open_ci) is None
    assert "interval of alpha is open" in S.scaling({"transformer": open_ci}, "data")
    # ... nor one whose other parameters are unbounded: an amplitude whose error exceeds it, a floor on its bound
    est = lambda v, se, lo, hi: SimpleNamespace(value=v, stderr=se, ci_low=lo, ci_high=hi)  # noqa: E731
    gamma = est(0.5, 0.1, 0.3, 0.7)
    wild = SimpleNamespace(ok=True, front=None, fit=SimpleNamespace(params={
        "gamma": gamma, "L_inf": est(4.7, 3.8, 0.1, 13.0), "F": est(2.07e7, 2.7e11, 2e5, 1e11)}))
    assert "F = 2.07e+07 ± 2.7e+11: its error exceeds its value" in S.frontier({"schnet": wild})
    floor = SimpleNamespace(ok=True, front=None, fit=SimpleNamespace(params={
        "gamma": gamma, "L_inf": est(1e-9, 0.0, 1e-9, 1e-9), "F": est(47.0, 27.0, 44.0, 122.0)}))
    assert "L_inf sits on its bound" in S.frontier({"transformer": floor})
    flat = SimpleNamespace(ok=True, law="power", exponent="alpha", points=pd.DataFrame(), fit=SimpleNamespace(
        params={"A": est(40.0, 1.0, 38.0, 42.0), "alpha": est(-0.0005, 0.004, -0.017, 0.016)}))
    assert S.exponent(flat) is not None and "includes 0" in S.scaling({"transformer": flat}, "params")


def test_flops_caveat_prints_the_measured_ratio():
    table = pd.DataFrame({
        "arch": ["schnet", "schnet", "transformer", "transformer", "linear"],
        "finished": [True] * 5, "trainable": [True, True, True, True, False],
        "flops": [4e10, 8e10, 2e9, 2e9, 0.0], "wall_s": [10.0, 10.0, 10.0, 5.0, 1.0]})
    rates = S.flops_rates(table)
    assert list(rates.index) == ["schnet", "transformer"]
    assert rates.loc["schnet", "median FLOPs/s"] == pytest.approx(6e9)
    assert rates.loc["transformer", "median FLOPs/s"] == pytest.approx(3e8)
    text = S.flops_caveat(rates)
    assert "20.0x" in text and "40x" in text and "not a cost axis" in text  # 6e9/3e8; 8e9/2e8


def test_convergence_sentence_counts_runs_still_falling():
    curves = pd.DataFrame({"run_id": ["a"] * 3 + ["b"] * 3, "arch": ["schnet"] * 6,
                           "val_loss": [3.0, 2.0, 1.0, 3.0, 2.0, 2.1]})
    t = S.convergence_table(curves)
    assert t["best_is_last"].tolist() == [True, False]
    assert t.loc[0, "last_drop"] == pytest.approx(0.5)
    text = S.convergence(curves)
    assert text.startswith("In 1 of 2 runs the best checkpoint is the last validation") and "1 of 2 runs were" in text


def test_findings_table_has_the_study_rows_and_the_published_ones(synthetic_study):
    from matscale.study import findings

    path, root = synthetic_study
    table = findings.table(path, root, ["schnet"])
    assert list(table.columns) == findings.COLUMNS
    mine = table[table["source"].str.startswith("this study")]
    assert "SchNet" in set(mine["architecture"])
    row = mine[mine["source"] == "this study"].iloc[0]
    assert "[" in row["data β (D)"] or row["data β (D)"] == "not identified"
    ngo = table[table["source"] == findings.NGO].set_index("architecture")
    assert ngo.loc["eSEN", ["data β (D)", "parameters α (N)", "compute γ (C)"]].tolist() == ["0.75", "0.82", "0.40"]
    assert ngo.loc["MPNN", ["data β (D)", "parameters α (N)", "compute γ (C)"]].tolist() == ["0.31", "0.28", "0.14"]
    seed = table[table["source"] == findings.TRIKHA]
    assert set(seed["architecture"]) == {"EquiformerV2", "transformer"}
    assert (seed["data β (D)"] == findings.NOT_RETRIEVED).all()  # never invented


# -- the validation selection's composition ---------------------------------------------------------------------
def test_composition_counts_parents_subsets_and_elements():
    from ase import Atoms

    from matscale.data.composition import composition
    from matscale.errors import DataError

    def atoms(symbols, parent, subset):
        a = Atoms(symbols)  # positions default to the origin
        a.info.update(parent_id=parent, subset=subset)
        return a

    split = [atoms("Ni2", "p1", "aimd"), atoms("Ni2", "p1", "aimd"), atoms("NiAl", "p1", "rattled"),
             atoms("Cu", "p2", "rattled"), atoms("Au", "p3", "relax"), atoms("Pt", "p4", "relax")]
    selection = split[:4]
    c = composition(selection, split)
    assert (c.structures, c.parents_covered, c.parents_total) == (4, 2, 4)
    assert c.parents.iloc[0].to_dict() == {"parent": "p1", "subsets": "aimd, rattled", "structures": 3}
    assert c.largest_parent_share == pytest.approx(0.75)
    subsets = c.subsets.set_index("subset")
    assert subsets.loc["aimd", "structures"] == 2 and subsets.loc["rattled", "parents"] == 2
    elements = c.elements.set_index("element")
    assert elements.loc["Ni", "structures"] == 3 and elements.loc["Ni", "share"] == pytest.approx(0.75)
    assert elements.loc["Al", "structures"] == 1 and elements.loc["Cu", "share"] == pytest.approx(0.25)
    assert set(elements.index) == {"Ni", "Al", "Cu"}
    assert "4 structures from 2 of the split's 4 parents" in c.summary()
    with pytest.raises(DataError, match="no parent"):
        composition([Atoms("Cu", positions=[[0, 0, 0]])])


def test_parity_and_teacher_findings_come_from_their_tables():
    errors = pd.DataFrame([{"arch": "equiformer_v2", "size": "xs", "val structures": 64,
                            "energy per atom MAE (meV/atom)": 12.345, "forces MAE (meV/Å)": 301.0}])
    text = S.parity(errors)
    assert "on 64 validation structures" in text and "EquiformerV2-xs: energy per atom 12.3 meV/atom" in text
    assert "forces 301 meV/Å" in text
    assert "nothing was predicted" in S.parity(pd.DataFrame())
    summary = pd.DataFrame([
        {"dataset": "EMT", "arch": "schnet", "value": 0.25, "ci_low": 0.16, "ci_high": 0.34, "note": ""},
        {"dataset": "teacher", "arch": "schnet", "value": np.nan, "ci_low": np.nan, "ci_high": np.nan,
         "note": "2 points"}])
    text = S.datasets(summary, ["EMT", "teacher"])
    assert text.startswith("SchNet's data exponent β is 0.25 [0.16, 0.34] on EMT")
    assert "not identified on teacher (2 points)" in text


def test_the_dataset_page_shows_the_studys_validation_selection(tiny_data_root, tmp_path):
    """With `val_per_parent` the selection covers every validation parent; with `val_frac` a few."""
    from matscale.data import open_split
    from matscale.study import dataset_page

    parents = len(set(open_split(tiny_data_root, "val").parent_ids.tolist()))
    for base, covered in (({"val_per_parent": 2}, parents), ({"val_frac": 0.05}, None)):
        study = tmp_path / f"s{len(base)}{list(base)[0]}.yaml"
        study.write_text(yaml.safe_dump({"name": "s", "base": {"epochs": 1, **base},
                                         "grid": {"arch": {"fcn": {"size": ["xs"]}}}}))
        page = dataset_page.validation(tiny_data_root, study)
        assert f"`{list(base)[0]}: {list(base.values())[0]:g}`" in page.finding
        sizes = page.tables["validation_subsets"]
        n = int(sizes["structures"].sum())
        assert f"validated on the same {n} structures" in page.finding
        assert f"of the split's {parents} parents" in page.finding
        if covered is not None:
            assert f"from {covered} of the split's {parents} parents" in page.finding
            assert n <= 2 * parents
        assert page.tables["validation_elements"]["share of structures (%)"].between(0, 100).all()
