"""`data import`: users' own labelled structures (extxyz, .traj, .db, VASP) into the OMat24 layout;
units and signs of stress/virial; clear errors naming file and frame; grouped, seeded splits."""
from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from matscale.data.importer import Keys, choose_val_groups, import_data
from matscale.data.reader import open_split
from matscale.data.units import convert_stress, full_tensor, stress_from_virial, stress_unit, to_voigt
from matscale.errors import ConfigError, DataError

LATTICE = {"Cu": 3.61, "Al": 4.05, "Ni": 3.52, "Ag": 4.09}
REPEATS = [(1, 1, 1), (2, 1, 1), (2, 2, 1), (1, 1, 1), (2, 2, 2), (2, 2, 1), (3, 2, 1), (2, 2, 2)]


def emt_frames(n: int, seed: int = 0, max_atoms: int = 64) -> list:
    """EMT-labelled, rattled and strained fcc cells of 1–64 atoms over Cu/Al/Ni/Ag, labels in a
    SinglePointCalculator (energy eV, forces eV/Å, stress eV/Å³)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        el = list(LATTICE)[i % 4]
        reps = REPEATS[i % len(REPEATS)]
        atoms = bulk(el, "fcc", a=LATTICE[el], cubic=(i % 3 == 1)).repeat(reps)
        if len(atoms) > max_atoms:
            atoms = atoms[:max_atoms]
        if len(atoms) > 1:  # alloy: swap a few sites
            k = rng.integers(1, max(2, len(atoms) // 3))
            atoms.numbers[rng.choice(len(atoms), k, replace=False)] = rng.choice([29, 13, 28, 47], k)
        atoms.rattle(0.04, seed=int(rng.integers(1 << 30)))
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
        atoms.calc = EMT()
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
        atoms.info["config_type"] = f"md{i // 3}"
        out.append(atoms)
    return out


def as_info(frames, stress: str = "virial", drop_stress: tuple = ()) -> list:
    """Copies with labels moved into info/arrays: stress as 'virial' (eV), 'stress_kbar' or 'stress_gpa'."""
    out = []
    for i, a in enumerate(frames):
        b = a.copy()
        b.calc = None
        b.info["energy"] = a.get_potential_energy()
        b.arrays["forces"] = a.get_forces()
        s = a.get_stress(voigt=False)
        if i not in drop_stress:
            if stress == "virial":
                b.info["virial"] = -s * a.get_volume()
            elif stress == "kbar":
                b.info["stress_kbar"] = s / (0.1 * units.GPa)
            else:
                b.info["stress_gpa"] = s / units.GPa
        out.append(b)
    return out


@pytest.fixture(scope="module")
def frames():
    return emt_frames(24, seed=1)


def test_units_helpers():
    sigma = np.array([[1.0, 0.2, 0.3], [0.2, 2.0, 0.4], [0.3, 0.4, 3.0]])
    v = to_voigt(sigma)
    np.testing.assert_array_equal(v, [1.0, 2.0, 3.0, 0.4, 0.3, 0.2])  # xx yy zz yz xz xy
    np.testing.assert_array_equal(full_tensor(v), sigma)
    np.testing.assert_array_equal(full_tensor(sigma.reshape(9)), sigma)
    assert stress_unit("kB") == "kbar" and stress_unit("gpa") == "GPa" and stress_unit("eV/Å3") == "eV/A3"
    assert convert_stress(v, "GPa")[0] == pytest.approx(units.GPa) and convert_stress(v, "kbar")[0] == pytest.approx(0.1 * units.GPa)
    cell = np.diag([2.0, 3.0, 4.0])  # V = 24 Å³
    np.testing.assert_allclose(stress_from_virial(-24.0 * sigma, cell), v)  # σ = −W/V
    with pytest.raises(DataError, match="unknown stress unit"):
        stress_unit("psi")
    with pytest.raises(DataError, match="6 \\(Voigt\\), 9 or 3x3"):
        full_tensor(np.zeros(4))


@pytest.mark.parametrize("form,units_flag", [("virial", "eV/A3"), ("kbar", "kbar"), ("gpa", "GPa")])
def test_stress_from_virial_kbar_and_gpa_equals_the_direct_stress(tmp_path, frames, form, units_flag):
    """Must-show: stress read back from a virial, from kbar and from GPa matches EMT's own stress to 1e-10."""
    src = tmp_path / "in.extxyz"
    ase.io.write(src, as_info(frames[:8], form), format="extxyz")
    keys = Keys(stress={"kbar": "stress_kbar", "gpa": "stress_gpa"}.get(form))
    r = import_data([src], tmp_path / "out", val_frac=0.25, keys=keys, stress_units=units_flag)
    assert r.structures == {"train": 6, "val": 2} and r.coverage["train"]["stress"] == 6
    by_sid = {}
    for split in ("train", "val"):
        ds = open_split(tmp_path / "out", split)
        by_sid.update({ds.record(i).info["sid"]: ds.record(i) for i in range(len(ds))})
    for i, atoms in enumerate(frames[:8]):
        rec = by_sid[f"in.extxyz:{i}"]
        np.testing.assert_allclose(rec.stress, atoms.get_stress(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(rec.forces, atoms.get_forces(), rtol=0, atol=1e-8)  # extxyz: 8 decimals
        assert rec.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(rec.cell, atoms.cell[:], atol=1e-12)
    # the sign: a compressed cell has negative ASE stress (positive pressure) after the conversion
    small = bulk("Cu", "fcc", a=3.4)
    small.calc = EMT()
    assert small.get_stress()[:3].mean() < 0


def test_traj_db_and_vasp_sources(tmp_path, frames):
    ase.io.write(tmp_path / "a.traj", frames[:6])
    ase.io.write(tmp_path / "b.db", frames[6:12])
    r = import_data([tmp_path / "a.traj", tmp_path / "b.db"], tmp_path / "out", val_frac=0.3, seed=3)
    assert r.sources == {"a.traj": 6, "b.db": 6} and sum(r.structures.values()) == 12
    ds = open_split(tmp_path / "out", "train")
    rec = ds.record(0)
    src = (frames[:6] + frames[6:12])[int(rec.info["frame"]) + (6 if rec.info["source"] == "b.db" else 0)]
    np.testing.assert_allclose(rec.stress, src.get_stress(), atol=1e-12)
    # real VASP outputs shipped with ASE's test data (read by ase.io's own VASP readers, eV/Å³ ASE sign)
    vasp = Path(ase.__file__).parent / "test" / "testdata" / "vasp"
    files = [vasp / "OUTCAR_example_1", vasp / "vasprun_pstress.xml"]
    if not all(f.exists() for f in files):
        pytest.skip("ASE's VASP test data is not installed")
    r = import_data(files[:1], tmp_path / "vasp", subset="outcar", val_from=files[1:])
    assert r.structures == {"train": 1, "val": 1} and r.coverage["val"]["stress"] == 1
    rec = open_split(tmp_path / "vasp", "val").record(0)
    np.testing.assert_allclose(rec.stress, ase.io.read(files[1]).get_stress(), atol=1e-12)


def test_grouped_split_is_seeded_and_never_straddles(tmp_path, frames):
    src = tmp_path / "g.extxyz"
    ase.io.write(src, as_info(frames), format="extxyz")
    splits = []
    for k, seed in enumerate((0, 0, 1)):
        out = tmp_path / f"o{k}"
        import_data([src], out, val_frac=0.25, group_key="config_type", seed=seed)
        split = {}
        for s in ("train", "val"):
            ds = open_split(out, s)
            for i in range(len(ds)):
                info = ds.record(i).info
                split[info["sid"]] = (s, info["parent_id"])
        groups = {}
        for sid, (s, parent) in split.items():
            groups.setdefault(parent, set()).add(s)
        assert all(len(v) == 1 for v in groups.values())  # a config_type lives in one split
        assert len(groups) == 8 and 0 < sum(s == "val" for s, _ in split.values()) < 24
        splits.append(split)
        meta = np.load(out / "train" / "imported" / "metadata.npz")["natoms"]
        assert len(meta) == len(open_split(out, "train")) and meta.min() >= 1
    assert splits[0] == splits[1] and splits[0] != splits[2]
    assert choose_val_groups(["a", "b", "c", "d"], [1, 1, 1, 1], 0.99, 0) != {"a", "b", "c", "d"}  # train keeps one


def test_bad_input_names_file_and_frame(tmp_path, frames):
    def write(name, items):
        path = tmp_path / name
        ase.io.write(path, items, format="extxyz")
        return path

    good = as_info(frames[:3])
    nan = [a.copy() for a in good]
    nan[2].info["energy"] = float("nan")
    with pytest.raises(DataError, match=r"nan\.extxyz frame 2: energy holds NaN"):
        import_data([write("nan.extxyz", nan)], tmp_path / "o1")
    shape = [a.copy() for a in good]
    for a in shape:
        a.info["W"], a.info["F"] = np.zeros(9), np.zeros((len(a), 3)).reshape(-1)
    shape[1].info["W"] = np.zeros(4)
    with pytest.raises(DataError, match=r"shape\.extxyz frame 1: .*virial must have 6 \(Voigt\), 9 or 3x3"):
        import_data([write("shape.extxyz", shape)], tmp_path / "o2", keys=Keys(virial="W"))
    with pytest.raises(DataError, match=r"shape\.extxyz frame 0: forces have shape \(\d+,\) but the frame has"):
        import_data([tmp_path / "shape.extxyz"], tmp_path / "o2", keys=Keys(forces="F"))
    mol = good[0].copy()
    mol.pbc, mol.cell = False, None
    with pytest.raises(DataError, match=r"mol\.extxyz frame 0: has a virial label but no 3-D periodic cell"):
        import_data([write("mol.extxyz", [mol] + good)], tmp_path / "o3")
    with pytest.raises(DataError, match=r"no frame has the key 'REF_energy' for energy; .*calculator results \['energy', 'forces'\], info keys"):
        import_data([write("keys.extxyz", good)], tmp_path / "o4", keys=Keys(energy="REF_energy"))
    bare = [a.copy() for a in good]
    for a in bare:
        a.info.pop("energy"), a.info.pop("virial"), a.arrays.pop("forces")
    with pytest.raises(DataError, match=r"has an energy, forces or stress label under the keys tried"):
        import_data([write("bare.extxyz", bare)], tmp_path / "o5")
    with pytest.raises(DataError, match=r"some\.extxyz frame 1: has no energy, forces or stress label"):
        import_data([write("some.extxyz", [good[0], bare[1], good[2]])], tmp_path / "o5")
    with pytest.raises(DataError, match=r"has no info key 'missing' to group by"):
        import_data([write("g.extxyz", good)], tmp_path / "o6", group_key="missing")
    (tmp_path / "junk.xyz").write_text("this is not\na structure file\n")
    with pytest.raises(DataError, match=r"junk\.xyz: ase\.io\.read cannot read it"):
        import_data([tmp_path / "junk.xyz"], tmp_path / "o7")
    with pytest.raises(ConfigError, match="--val-frac or --val-from"):
        import_data([write("v.extxyz", good)], tmp_path / "o8", val_frac=0.2, val_from=[tmp_path / "v.extxyz"])
    import_data([write("ok.extxyz", good)], tmp_path / "o9", val_frac=0.4)
    with pytest.raises(DataError, match="already exist"):
        import_data([tmp_path / "ok.extxyz"], tmp_path / "o9")


def test_missing_labels_are_stored_as_absent(tmp_path, frames):
    items = as_info(frames[:6], drop_stress=(1,))
    del items[3].arrays["forces"]
    items[4].info.pop("energy")
    mol = items[5].copy()  # a molecule-like frame: no cell, no stress, still importable
    mol.pbc, mol.cell = False, None
    mol.info.pop("virial")
    items[5] = mol
    src = tmp_path / "mixed.extxyz"
    ase.io.write(src, items, format="extxyz")
    ase.io.write(tmp_path / "val.extxyz", items, format="extxyz")
    with pytest.raises(ConfigError, match="both a source and in --val-from"):
        import_data([src], tmp_path / "out", val_from=[src])
    r = import_data([src], tmp_path / "out", val_from=[tmp_path / "val.extxyz"])
    assert r.coverage["train"] == {"structures": 6, "energy": 5, "forces": 5, "stress": 4}
    assert any("have no stress label" in w for w in r.warnings)
    ds = open_split(tmp_path / "out", "train")
    flags = [(ds.record(i).has_energy, ds.record(i).has_forces, ds.record(i).has_stress) for i in range(6)]
    assert flags == [(True, True, True), (True, True, False), (True, True, True), (True, False, True),
                     (False, True, True), (True, True, False)]
    assert not ds[5].pbc.any() and "stress" not in ds[1].calc.results
    report = json.loads((tmp_path / "out" / "import-imported.json").read_text())
    assert report["coverage"]["val"]["stress"] == 4 and report["group_key"] == "frame"


def test_readme_section_commands_parse():
    """The README's "Train on your own data" commands are valid for the CLIs they call."""
    from matscale.data.cli import _parser
    from matscale.train.cli import build_parser, config_from_args

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Train on your own data", 1)[1].split("\n## ", 1)[0]
    commands = [line.split("#")[0].split()[3:] for line in section.splitlines() if line.startswith("python -m matscale")]
    assert [c[0] for c in commands] == ["data", "train"]
    args = _parser().parse_args(commands[0][1:])
    assert args.cmd == "import" and args.group_key == "config_type" and args.out == "data/mine"
    cfg = config_from_args(build_parser().parse_args(commands[1][1:]))
    assert cfg.data == "data/mine" and cfg.frac == 1 and cfg.val_frac == 1


def test_json_flag_prints_and_output_writes_on_every_command(tmp_path, frames, capsys):
    """--json: JSON on stdout instead of the table; --output FILE: the same JSON in FILE."""
    from matscale.cli import main as cli_main

    ase.io.write(tmp_path / "s.extxyz", as_info(frames[:6]), format="extxyz")
    assert cli_main(["data", "import", str(tmp_path / "s.extxyz"), "--out", str(tmp_path / "d"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["structures"]["train"] == 5
    for argv in (["models", "--arch", "linear"], ["data", "stats", str(tmp_path / "d")]):
        out = tmp_path / f"{argv[0]}.json"
        assert cli_main(argv + ["--json", "--output", str(out)]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed == json.loads(out.read_text())
        assert cli_main(argv + ["--output", str(out)]) == 0  # without --json: the table, and the file
        assert not capsys.readouterr().out.lstrip().startswith(("{", "["))
        assert json.loads(out.read_text()) == printed
