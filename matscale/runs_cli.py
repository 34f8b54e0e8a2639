"""`python -m matscale runs ls|export`: list the runs folder and export results for `fit`.

    python -m matscale runs ls                                  every run, one line each
    python -m matscale runs ls --study default --status completed
    python -m matscale runs export --study default -o results.csv
    python -m matscale fit results.csv --x D --y loss --where arch=schnet --where size=xs --replicates
    python -m matscale runs export --study default --curves -o curves.csv   # one row per validation
    python -m matscale fit curves.csv --x C --y loss --run run_id --law frontier

Export columns (one row per finished run, the names `fit`'s examples use):
    run_id, study, arch, size, seed, frac, status,
    N        non-embedding parameters (the paper's N); N_total: all parameters
    D        nominal training-set size in structures: the mean over the runs at the same
             data fraction (seeds select slightly different parent structures, e.g. 306 and
             307, so replicates share one D); n_train: this run's exact count
    C        training FLOPs (forward + backward, cumulative)
    loss     best validation loss (the OMat24 weighted loss); final_loss: at the last validation
    energy_mae_meV_atom, force_l2mae_meV_A, stress_mae_meV_A3: at the best validation
With --curves, one row per validation (epoch, step, C, loss, and the same MAEs) instead.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from matscale import runs
from matscale.errors import ConfigError
from matscale.membership import members

EXPORT_COLUMNS = ("run_id", "study", "arch", "size", "seed", "frac", "status", "N", "N_total", "D", "n_train",
                  "C", "loss", "final_loss", "energy_mae_meV_atom", "force_l2mae_meV_A", "stress_mae_meV_A3")
CURVE_COLUMNS = ("run_id", "study", "arch", "size", "seed", "frac", "N", "D", "epoch", "step", "C", "loss",
                 "energy_mae_meV_atom", "force_l2mae_meV_A", "stress_mae_meV_A3")
_MAES = {"energy_mae_meV_atom": "val_energy_mae_eV_atom", "force_l2mae_meV_A": "val_force_l2mae_eV_A",
         "stress_mae_meV_A3": "val_stress_mae_eV_A3"}
_LS = ("run_id", "study", "status", "arch", "size", "frac", "seed", "n_train", "params_non_embedding",
       "best_val_loss", "wall_s", "ckpt")


def table(root: str = "runs", study: str | None = None, status: str | None = None) -> pd.DataFrame:
    """`matscale.runs.load(root)` restricted to one study's runs and/or one status."""
    df = runs.load(root)
    if study is not None:
        ids = set(members(root, study))
        df = df[df["run_id"].isin(ids)] if len(df) else df
        if df.empty:
            raise ConfigError(f"study {study!r} has no run folders under {runs.resolve_root(root)} yet; "
                              f"run its sweep (python -m matscale sweep book/sweeps/{study}.yaml)")
    if status is not None and len(df):
        df = df[df["status"] == status]
    return df.reset_index(drop=True)


def nominal_size(df: pd.DataFrame) -> pd.Series:
    """Mean training-set size of the runs sharing dataset, subsets and fraction (see D above)."""
    data = "data_fingerprint" if "data_fingerprint" in df.columns else "data"
    keys = [k for k in (data, "subsets", "frac") if k in df.columns]
    filled = df[keys].map(lambda v: "" if v is None or v != v else str(v))
    return df.groupby([filled[k] for k in keys], dropna=False)["n_train"].transform("mean").round().astype("Int64")


def export_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run with the columns in `EXPORT_COLUMNS`."""
    done = df[df["status"].isin(runs.FINISHED)].copy() if len(df) else df
    if done.empty:
        raise ConfigError("no finished runs to export (runs ls shows what there is)")
    out = pd.DataFrame({
        "run_id": done["run_id"], "study": done.get("study"), "arch": done["arch"], "size": done["size"],
        "seed": done["seed"], "frac": done["frac"], "status": done["status"],
        "N": done["params_non_embedding"], "N_total": done["params_total"], "D": nominal_size(done),
        "n_train": done["n_train"], "C": done["flops"], "loss": done["best_val_loss"],
        "final_loss": done["final_val_loss"]})
    for col, src in _MAES.items():
        out[col] = 1e3 * done[f"best_{src}"] if f"best_{src}" in done else float("nan")
    return out[list(EXPORT_COLUMNS)].reset_index(drop=True)


def curves_table(df: pd.DataFrame, root: str = "runs") -> pd.DataFrame:
    """One row per validation of every finished trainable run (`CURVE_COLUMNS`)."""
    per_run = export_table(df).set_index("run_id")
    frames = []
    for run_id in per_run.index:
        m = runs.metrics(run_id, root)
        if m.empty or "val_loss" not in m:
            continue
        rows = pd.DataFrame({"run_id": run_id, "epoch": m["epoch"], "step": m["step"], "C": m["flops"],
                             "loss": m["val_loss"]})
        for col, src in _MAES.items():
            rows[col] = 1e3 * m[src] if src in m else float("nan")
        for col in ("study", "arch", "size", "seed", "frac", "N", "D"):
            rows[col] = per_run.at[run_id, col]
        frames.append(rows)
    if not frames:
        raise ConfigError("the runs have no metrics rows to export")
    return pd.concat(frames, ignore_index=True)[list(CURVE_COLUMNS)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m matscale runs", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.split("\n")[1:]))
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("ls", "list runs, one line each"), ("export", "write a CSV of results for `fit`")):
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("--root", default="runs", help="runs folder (default: runs/ of the repository)")
        s.add_argument("--study", default=None, help="only the runs of this study (a sweep file's name)")
        s.add_argument("--status", default=None, choices=runs.STATUSES, help="only runs with this status")
        if name == "export":
            s.add_argument("-o", "--output", required=True, help="CSV file to write")
            s.add_argument("--curves", action="store_true", help="one row per validation instead of per run")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    df = table(args.root, args.study, args.status)
    if args.command == "ls":
        if df.empty:
            print(f"no runs under {runs.resolve_root(args.root)}")
            return 0
        df["ckpt"] = ["best.pt" if (Path(d) / "checkpoints" / "best.pt").exists() else "-" for d in df["run_dir"]]
        cols = [c for c in _LS if c in df.columns]
        view = df[cols].rename(columns={"params_non_embedding": "N", "best_val_loss": "best_val"})
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(view.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"{len(df)} run(s); " + ", ".join(f"{k} {v}" for k, v in df["status"].value_counts().items()))
        return 0
    out = curves_table(df, args.root) if args.curves else export_table(df)
    runs.atomic_write_text(args.output, out.to_csv(index=False))
    print(f"wrote {len(out)} row(s) to {args.output}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
