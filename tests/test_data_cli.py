"""The `python -m matscale data ...` commands, the default dataset's location and its generation
guard (lock, atomic rename), and the must-show checks on a small synthetic set."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from matscale.cli import main as cli_main
from matscale.data import default
from matscale.data.subsets import SPLITS, SUBSETS


def failing_factory():
    """A calculator factory that fails inside the worker (used to interrupt a generation)."""
    raise RuntimeError("calculator exploded")


def test_synth_twice_gives_identical_stats_json(tiny_data_root, tmp_path, capsys):
    """Must-show: the same `data synth` (here with 1 worker instead of the fixture's 2) gives a
    byte-identical `data stats --json`; the stats list all 11 subsets in train and val."""
    target = json.loads((Path(tiny_data_root) / "synth.json").read_text())["structures_target"]
    out = tmp_path / "again"
    assert cli_main(["data", "synth", "--out", str(out), "--structures", str(target), "--seed", "0",
                     "--workers", "1", "--quiet"]) == 0
    assert "train +" in capsys.readouterr().out
    for root, flag, name in ((tiny_data_root, "--output", "a.json"), (out, "--json", "b.json")):  # --json FILE: old spelling
        assert cli_main(["data", "stats", str(root), flag, str(tmp_path / name)]) == 0
    table = capsys.readouterr().out
    a, b = (tmp_path / "a.json").read_bytes(), (tmp_path / "b.json").read_bytes()
    assert a == b
    stats = json.loads(a)["statistics"]
    for split in SPLITS:
        assert {r["subset"] for r in stats if r["split"] == split} == set(SUBSETS) | {"all"}
    assert "aimd-from-PBE-3000-nvt" in table and "GPa" in table


def test_stats_json_to_stdout_and_split_choice(tiny_data_root, capsys):
    assert cli_main(["data", "stats", str(tiny_data_root), "--split", "val", "--subsets", "rattled-300", "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)["statistics"]
    assert {(r["split"], r["subset"]) for r in rows} == {("val", "rattled-300"), ("val", "all")}
    natoms = next(r for r in rows if r["quantity"] == "natoms" and r["subset"] == "rattled-300")
    assert natoms["count"] == 5


def test_data_commands_start_light():
    code = ("import sys; from matscale.data.cli import _parser; _parser();"
            "print(sorted(m for m in ('torch', 'fairchem', 'ase', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    res = subprocess.run([sys.executable, "-m", "matscale", "data", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "synth" in res.stdout and "download" in res.stdout


def test_default_root_location(monkeypatch, tmp_path):
    monkeypatch.setenv("MATSCALE_DATA", str(tmp_path / "mine"))
    assert default.default_root() == tmp_path / "mine"
    monkeypatch.delenv("MATSCALE_DATA")
    repo = Path(default.__file__).resolve().parents[2]
    assert default.default_root() == repo / "data" / "omat24-emt-v1"  # source checkout
    monkeypatch.setattr(default, "_source_checkout", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default.default_root() == tmp_path / "cache" / "matscale" / "omat24-emt-v1"


def test_ensure_reuses_any_dataset_under_matscale_data(tiny_data_root, monkeypatch, capsys):
    monkeypatch.setenv("MATSCALE_DATA", str(tiny_data_root))
    assert cli_main(["data", "ensure", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(tiny_data_root)
    from matscale.data.reader import open_split

    assert len(open_split(None, "val")) == len(open_split(tiny_data_root, "val"))  # root=None: the default
    # a synthetic set with other settings at an implicit location is refused
    with pytest.raises(Exception, match="other settings"):
        default.ensure_dataset(tiny_data_root, 20_000, seed=0)


def test_ensure_generates_once_under_a_lock(tiny_data_root, tmp_path, monkeypatch):
    """Two concurrent callers: one generates (in a temp dir, renamed), the other waits and reuses."""
    calls = []

    def fake_synthesize(out, structures, **kw):
        calls.append(out)
        tmp = Path(out).parent / f".{Path(out).name}.tmp-fake"
        shutil.copytree(tiny_data_root, tmp)
        time.sleep(0.5)
        os.replace(tmp, out)

    monkeypatch.setattr("matscale.data.synth.synthesize", fake_synthesize)
    root = tmp_path / "shared" / "set"
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / ".set.tmp-12345").mkdir()  # debris of an interrupted run
    results = []
    threads = [threading.Thread(target=lambda: results.append(default.ensure_dataset(root, 300, progress=False)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [root, root] and calls == [root]
    assert not (tmp_path / "shared" / ".set.tmp-12345").exists()


def test_interrupted_generation_leaves_nothing(tmp_path):
    from matscale.data.synth import synthesize

    with pytest.raises(RuntimeError, match="calculator exploded"):
        synthesize(tmp_path / "out", 50, calculator="test_data_cli:failing_factory", workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_histograms_share_bins_and_count_everything(tiny_data_root):
    from matscale.data.stats import histograms, summary_statistics

    stats = summary_statistics(tiny_data_root)
    hist = histograms(tiny_data_root, quantities=["natoms", "force_norm", "pressure"], bins=12)
    for q in ("natoms", "force_norm", "pressure"):
        h = hist[hist.quantity == q]
        edges = {tuple(g.bin_left) for _, g in h.groupby(["split", "subset"])}
        assert len(edges) == 1  # same bins for every split x subset
        for (split, subset), g in h.groupby(["split", "subset"]):
            n = stats[(stats.split == split) & (stats.subset == subset) & (stats.quantity == q)]["count"].item()
            assert g["count"].sum() == n
    s = stats[(stats.quantity == "natoms") & (stats.subset == "all")]
    assert set(s.split) == {"train", "val"} and (s["min"] >= 1).all()
