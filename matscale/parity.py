"""Parity of a study's best models: predicted against reference energies, forces and stress.

For each trainable architecture of a study, the run with the lowest best validation loss is
loaded from its best checkpoint and predicts (up to `limit`) validation structures; the book's
parity page shows the three panels per architecture and a table of the errors, in meV units.
Checkpoints are git-ignored except the default study's best run per architecture, so a run
without weights is reported (with the command that recreates them) instead of failing.

    best_runs(study, root) -> DataFrame       arch, run_id, run_dir, size, frac, params, best_val_loss, has_weights
    parity_page(study, root, limit) -> (errors table, chart or None, notes)
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from matscale import runs

WEIGHTS = Path("checkpoints") / "best.pt"
# (label, true key, pred key, unit) of the parity arrays (matscale.train.validation.parity), x 1e3
PANELS = (("energy per atom", "energy_per_atom", "meV/atom"), ("force", "forces", "meV/Å"),
          ("stress", "stress", "meV/Å³"))
# short axis names (three panels side by side must fit the book's column at 1300 px)
_AXIS = {"energy_per_atom": "E per atom", "forces": "F component", "stress": "σ component"}


def study_run_ids(study: str | Path = "default") -> set[str]:
    """The run ids a study plans: `study` names book/sweeps/<study>.yaml or is a sweep file's path."""
    from matscale.sweep import expand

    path = Path(study)
    if not path.suffix:
        from matscale.runs import repo_root

        path = (repo_root() or Path.cwd()) / "book" / "sweeps" / f"{study}.yaml"
    ids = set()
    for config in expand(path):
        try:
            ids.add(config.validate(check_device=False).run_id())
        except Exception:  # an invalid point has no run folder to show
            continue
    return ids


def best_runs(study: str | Path = "default", root: str | Path = "runs") -> pd.DataFrame:
    """The finished trainable run with the lowest best validation loss, per architecture."""
    df = runs.load(root)
    if df.empty:
        return pd.DataFrame(columns=["arch", "run_id", "run_dir", "has_weights"])
    df = df[df["run_id"].isin(study_run_ids(study)) & df["status"].isin(runs.FINISHED)]
    df = df[df["trainable"].fillna(False).astype(bool) & df["best_val_loss"].notna()]
    best = df.loc[df.groupby("arch")["best_val_loss"].idxmin()].sort_values("best_val_loss")
    best = best.assign(params=best["params_non_embedding"],
                       has_weights=[(Path(d) / WEIGHTS).is_file() for d in best["run_dir"]])
    return best[["arch", "run_id", "run_dir", "size", "frac", "params", "best_val_loss", "has_weights"]] \
        .reset_index(drop=True)


def parity_page(study: str = "default", root: str | Path = "runs", limit: int = 256, size: int = 140,
                data: str | None = None):
    """(errors per architecture, parity chart (rows: architectures) or None, notes).

    `limit`: validation structures predicted per run (the first ones of its validation subset);
    `data`: dataset root (default: `$MATSCALE_BOOK_DATA`, else each run's own, i.e. the default
    dataset; see `matscale.data.default.book_data`)."""
    import altair as alt

    from matscale import charts
    from matscale.train.evaluate import predictions

    from matscale.data.default import book_data

    data = book_data(data)
    rows, panels, notes = [], [], []
    for r in best_runs(study, root).itertuples():
        if not r.has_weights:
            notes.append(f"{r.arch}: its best run {r.run_id} has no weights here; recreate them with "
                         f"`python -m matscale train --config {Path(r.run_dir) / 'config.json'} --force "
                         f"--run-root {Path(r.run_dir).parent}`")
            continue
        pred = predictions(r.run_dir, split="val", data=data, limit=limit)
        row = {"arch": r.arch, "size": r.size, "frac": r.frac, "N": r.params,
               "val structures": int(len(pred["energy_per_atom_true"]))}
        line = []
        for label, key, unit in PANELS:
            true, est = 1e3 * pred[f"{key}_true"], 1e3 * pred[f"{key}_pred"]
            mae = float(abs(est - true).mean())
            row[f"{label} MAE ({unit})"] = float(f"{mae:.4g}")
            panel = charts.parity(true, est, _AXIS[key], unit, size=size, max_points=3000, title=label)
            # the subtitle on two short lines, so that it never widens a panel
            line.append(panel.properties(title=alt.TitleParams(
                label, subtitle=[f"MAE {mae:.4g} {unit}", f"{true.size:,} values"])))
        row["run"] = r.run_id
        rows.append(row)
        panels.append(alt.hconcat(*line, title=alt.TitleParams(f"{r.arch}-{r.size} (best run, frac {r.frac:g})",
                                                               anchor="start")))
    chart = alt.vconcat(*panels) if panels else None
    return pd.DataFrame(rows), chart, notes
