"""RunSummary: the loop writes it, the study reads it; the flat summary.json format survives."""
from __future__ import annotations

import json
from pathlib import Path

from matscale.run_summary import RunSummary

ROOT = Path(__file__).resolve().parents[1]


def test_committed_summaries_round_trip_exactly():
    paths = sorted((ROOT / "runs").glob("*/summary.json"))
    assert paths, "the committed study has run folders"
    for path in paths:
        raw = json.loads(path.read_text())
        s = RunSummary.from_dict(raw)
        assert s.status in ("completed", "stopped_early") and s.best_val_loss is not None
        written = {k: v for k, v in s.to_dict().items() if k in raw or v is not None}  # unset fields: null
        assert {**written, "run_id": raw["run_id"]} == raw


def test_best_metrics_are_flat_best_keys_and_unknown_keys_survive():
    s = RunSummary(status="completed", best_val_loss=1.5)
    s.set_best_metrics({"val_loss": 1.5, "val_force_l2mae_eV_A": 0.2, "epoch": 3, "train_loss": 9.0})
    s.update(lock_owner=123)  # a key some newer code added
    d = s.to_dict()
    assert d["best_val_force_l2mae_eV_A"] == 0.2 and "best_val_loss" in d and "best_train_loss" not in d
    assert d["lock_owner"] == 123 and s.get("best_val_force_l2mae_eV_A") == 0.2
    again = RunSummary.from_dict(d)
    assert again == s and again.best_metrics == {"val_force_l2mae_eV_A": 0.2}
