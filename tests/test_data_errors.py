"""Bad data and bad arguments give one clear DataError (and `error: ...`, exit 2 on the CLI)."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from matscale.cli import main as cli_main
from matscale.data.reader import open_split
from matscale.errors import DataError


def _copy_subset(tiny_data_root, tmp_path, subset="rattled-300", split="val") -> Path:
    dst = tmp_path / "ds" / split / subset
    shutil.copytree(Path(tiny_data_root) / split / subset, dst)
    return tmp_path / "ds"


def _write_rows(path: Path, rows):
    """Write (atoms, calc-results dict) rows with ase.db, like a foreign OMat24-style file."""
    import ase.db
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    db = ase.db.connect(str(path), use_lock_file=False)
    for results in rows:
        atoms = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
        atoms.calc = SinglePointCalculator(atoms, **results)
        db.write(atoms, data={"sid": "x", "parent_id": "p"})
    db.close() if hasattr(db, "close") else None


def test_missing_path_suggests_how_to_make_data(tmp_path, capsys):
    with pytest.raises(DataError, match="data synth --out") as e:
        open_split(tmp_path / "nowhere")
    assert "data download" in str(e.value)
    assert cli_main(["data", "stats", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no dataset at") and "Traceback" not in err and err.count("\n") == 1


def test_empty_directory(tmp_path):
    (tmp_path / "train" / "rattled-300").mkdir(parents=True)
    (tmp_path / "train" / "rattled-300" / "notes.txt").write_text("no databases here")
    with pytest.raises(DataError, match=r"no \*\.aselmdb files under"):
        open_split(tmp_path, "train")


def test_corrupt_lmdb_file(tmp_path):
    d = tmp_path / "train" / "rattled-300"
    d.mkdir(parents=True)
    (d / "data.aselmdb").write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(DataError, match=r"data\.aselmdb is not a readable ASE LMDB database"):
        open_split(tmp_path, "train")


def test_structure_without_forces_or_stress(tmp_path):
    d = tmp_path / "train" / "rattled-300"
    d.mkdir(parents=True)
    forces = np.zeros((2, 3))
    _write_rows(d / "data.aselmdb", [dict(energy=1.0, forces=forces, stress=np.zeros(6)), dict(energy=1.0, forces=forces)])
    ds = open_split(tmp_path, "train")
    assert ds.record(0).has_stress and "stress" in ds[0].calc.results
    rec = ds.record(1)  # a missing label is not an error: NaN-filled and flagged
    assert rec.has_energy and rec.has_forces and not rec.has_stress and np.isnan(rec.stress).all()
    assert "stress" not in ds[1].calc.results and ds[1].get_potential_energy() == 1.0


@pytest.mark.parametrize("bad", ["energy", "forces", "stress"])
def test_non_finite_labels_name_file_and_row(tmp_path, bad):
    d = tmp_path / "val" / "rattled-relax"
    d.mkdir(parents=True)
    good = dict(energy=1.0, forces=np.zeros((2, 3)), stress=np.zeros(6))
    broken = dict(good)
    broken[bad] = np.inf if bad == "energy" else np.full_like(good[bad], np.nan)
    _write_rows(d / "data.aselmdb", [good, good, broken])
    ds = open_split(tmp_path, "val")
    with pytest.raises(DataError, match=rf"rattled-relax/data\.aselmdb row 3: non-finite \(NaN or inf\) {bad}"):
        ds.validate()


@pytest.mark.parametrize("frac", [0, -0.1, 1.5, float("nan"), "half"])
def test_frac_outside_unit_interval(tiny_data_root, frac):
    with pytest.raises(DataError, match=r"frac must be"):
        open_split(tiny_data_root, "train", frac=frac)


def test_unknown_subset_lists_valid_ones(tiny_data_root):
    with pytest.raises(DataError, match="unknown subset.*'rattled-301'.*valid subsets are: rattled-1000, "):
        open_split(tiny_data_root, "train", subsets=["rattled-300", "rattled-301"])
    with pytest.raises(DataError, match="unknown split"):
        open_split(tiny_data_root, "test")


def test_known_subset_missing_from_this_root(tiny_data_root, tmp_path):
    root = _copy_subset(tiny_data_root, tmp_path)
    with pytest.raises(DataError, match="rattled-500 not found under .*present there: rattled-300"):
        open_split(root, "val", subsets=["rattled-500"])


def test_metadata_length_mismatch(tiny_data_root, tmp_path):
    root = _copy_subset(tiny_data_root, tmp_path)
    meta = root / "val" / "rattled-300" / "metadata.npz"
    np.savez(meta, natoms=np.ones(3, dtype=np.int64))
    with pytest.raises(DataError, match=r"metadata\.npz lists 3 structures but the databases .* hold 5"):
        open_split(root, "val")
    np.savez(meta, natoms=np.ones(5, dtype=np.float64))
    with pytest.raises(DataError, match="natoms must be integers"):
        open_split(root, "val")


def test_bad_generation_arguments(tmp_path):
    from matscale.data.synth import synthesize

    with pytest.raises(DataError, match="unknown calculator 'lj'.*emt"):
        synthesize(tmp_path / "a", 100, calculator="lj", progress=False)
    with pytest.raises(DataError, match="positive number"):
        synthesize(tmp_path / "b", 0, progress=False)
    with pytest.raises(DataError, match="cannot import calculator factory"):
        synthesize(tmp_path / "c", 100, calculator="no_such_module:f", progress=False)
    assert not any(tmp_path.iterdir())
