"""`python -m matscale fit CSV ...`: fit a scaling law to any CSV of (size, loss) results.

Examples (results.csv from `python -m matscale runs export --study default -o results.csv`:
N parameters, D training structures, C FLOPs, loss = best validation loss):
    python -m matscale fit results.csv --x N --y loss --where arch=schnet --where frac=0.08 --law power_floor
    python -m matscale fit results.csv --x D --y loss --where arch=schnet --where size=xs --replicates --json
    python -m matscale fit results.csv --x n_train --y loss --where arch=schnet --where size=xs --replicates \
        --group frac --compare
    python -m matscale fit chinchilla.csv --n "Model Size" --c "Training FLOP" --y loss \\
        --law joint --loss huber --log --drop-highest 5 --bootstrap 200
    python -m matscale fit curves.csv --x C --y loss --run run_id --law frontier   # runs export --curves

Intervals: profile likelihood for least squares, bootstrap percentiles with --bootstrap K
(and always for --loss huber, 200 resamples unless given); the output names the method.
Errors (bad columns, NaN, too few points, no convergence) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from matscale.errors import DataError, FitError, MatscaleError
from matscale.fit.api import CI_METHODS, fit_law
from matscale.fit.frontier import fit_frontier
from matscale.fit.laws import LAWS
from matscale.fit.optimal import compute_optimal
from matscale.fit.select import compare_laws


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m matscale fit", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.split("\n")[1:]))
    p.add_argument("csv", help="CSV file with one row per run (or per evaluation, for --law frontier)")
    p.add_argument("--x", help="size column (parameters, samples, FLOPs)")
    p.add_argument("--y", required=True, help="loss column")
    p.add_argument("--law", default="power", choices=list(LAWS), help="law to fit (default: power)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--sigma", help="column with the standard deviation of each loss (weights 1/sigma)")
    w.add_argument("--replicates", action="store_true",
                   help="rows sharing x are repeated runs (seeds): average them, use their std as sigma")
    p.add_argument("--group", metavar="COL",
                   help="with --replicates: rows sharing COL are the replicates (e.g. frac: seeds that select "
                        "306 and 307 structures at one fraction); their x is replaced by the group's mean")
    p.add_argument("--n", help="parameter-count column (joint law)")
    p.add_argument("--d", help="data-size column (joint law)")
    p.add_argument("--c", help="training-compute column: D = C / (6 N) when --d is not given (joint law)")
    p.add_argument("--run", help="run-id column: fit the compute Pareto front over runs (frontier law)")
    p.add_argument("--where", action="append", default=[], metavar="COL=VALUE",
                   help="keep only rows where COL equals VALUE (repeatable)")
    p.add_argument("--drop-highest", type=int, default=0, metavar="K",
                   help="drop the K rows with the highest loss (e.g. 5, as in the Chinchilla replication)")
    p.add_argument("--loss", default="lsq", choices=["lsq", "huber"], help="estimator (default: lsq)")
    p.add_argument("--huber-delta", type=float, default=1e-3, help="Huber threshold on residuals (default 1e-3)")
    p.add_argument("--log", action="store_true", help="fit residuals of ln(loss) instead of loss")
    p.add_argument("--relative-sigma", action="store_true",
                   help="sigma gives relative weights only: rescale errors by chi2/dof")
    p.add_argument("--bootstrap", type=int, default=0, metavar="K", help="bootstrap resamples for intervals")
    p.add_argument("--ci", default="auto", choices=list(CI_METHODS),
                   help="interval method (default auto: profile, or bootstrap for --bootstrap/--loss huber)")
    p.add_argument("--ci-level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--n-starts", type=int, default=4, help="lmfit starts from the best grid points (default 4)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--compare", action="store_true", help="fit every applicable law and rank them by AICc")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--output", help="also write the JSON result to this file")
    return p


def _read(path: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise DataError(f"no such file: {path}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as CSV: {exc}") from None
    if df.empty:
        raise DataError(f"{path} has no rows")
    return df


def _column(df: pd.DataFrame, name: str | None, flag: str) -> pd.Series:
    if name is None:
        raise FitError(f"{flag} COL is required for this law")
    if name not in df.columns:
        raise FitError(f"{flag}: no column {name!r}; the CSV has: {', '.join(map(str, df.columns))}")
    return df[name]


def _filter(df: pd.DataFrame, args) -> pd.DataFrame:
    for cond in args.where:
        col, sep, value = cond.partition("=")
        if not sep:
            raise FitError(f"--where expects COL=VALUE, got {cond!r}")
        if col not in df.columns:
            raise FitError(f"--where: no column {col!r}; the CSV has: {', '.join(map(str, df.columns))}")
        df = df[df[col].astype(str) == value]
        if df.empty:
            raise FitError(f"--where {cond}: no rows left")
    if args.drop_highest:
        if args.drop_highest >= len(df):
            raise FitError(f"--drop-highest {args.drop_highest} would drop all {len(df)} rows")
        df = df.sort_values(_column(df, args.y, "--y").name).iloc[: len(df) - args.drop_highest]
    return df


def _write_atomic(path: str, text: str) -> None:
    from matscale.runs import atomic_write_text

    atomic_write_text(path, text)


def _json_clean(obj):
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _group(df: pd.DataFrame, args) -> pd.DataFrame:
    """--group COL: replicates share COL; each group's x becomes its mean."""
    if not args.group:
        return df
    if not args.replicates:
        raise FitError("--group COL names the replicates of --replicates; add --replicates")
    col, x = _column(df, args.group, "--group").name, _column(df, args.x, "--x").name
    return df.assign(**{x: df.groupby(col, dropna=False)[x].transform("mean")})


def run(args) -> tuple[dict, str]:
    """Do the fit(s) the arguments ask for; return (JSON object, readable text)."""
    df = _group(_filter(_read(args.csv), args), args)
    y = _column(df, args.y, "--y")
    common = dict(loss=args.loss, log=args.log, huber_delta=args.huber_delta, n_starts=args.n_starts,
                  seed=args.seed)
    sigma = _column(df, args.sigma, "--sigma") if args.sigma else None
    uncertainty = dict(bootstrap=args.bootstrap, ci=args.ci, ci_level=args.ci_level)
    if args.compare:
        if args.law == "joint" or args.n or args.d:
            raise FitError("--compare ranks the one-input laws; it does not apply to the joint law")
        x = _column(df, args.x, "--x")
        table = compare_laws(x, y, sigma=sigma, replicates=args.replicates,
                             absolute_sigma=not args.relative_sigma, **common)
        rows = _json_clean(table.to_dict(orient="records"))
        text = "AICc ranking (lower is better; same data, loss and weights for every law)\n"
        text += table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        return {"compare": rows, "best": rows[0]["law"], "n_points": int(table["n_points"].iloc[0])}, text
    if args.law in ("frontier", "frontier_power") and args.run:
        fit = fit_frontier(df, _column(df, args.x, "--x").name, args.y, _column(df, args.run, "--run").name,
                           law=args.law, log=args.log, loss=args.loss, huber_delta=args.huber_delta, n_starts=args.n_starts,
                           seed=args.seed, **uncertainty)
    elif args.law == "joint":
        N = _column(df, args.n, "--n").to_numpy(float)
        if args.d:
            D = _column(df, args.d, "--d").to_numpy(float)
        elif args.c:
            D = _column(df, args.c, "--c").to_numpy(float) / (6.0 * N)
        else:
            raise FitError("the joint law needs --n and either --d or --c (compute, D = C / 6N)")
        fit = fit_law((N, D), y, "joint", sigma, replicates=args.replicates,
                      absolute_sigma=not args.relative_sigma, **common, **uncertainty)
    else:
        x = _column(df, args.x, "--x")
        fit = fit_law(x, y, args.law, sigma, replicates=args.replicates,
                      absolute_sigma=not args.relative_sigma, **common, **uncertainty)
    out = fit.to_dict()
    text = fit.table()
    if fit.law == "joint" and fit.errorbars:
        opt = compute_optimal(fit)
        out["compute_optimal"] = {k: opt[k] for k in ("a", "a_stderr", "a_ci", "b", "b_stderr", "b_ci", "method")}
        text += (f"\n\n  compute-optimal: N* ~ C^{opt['a']:.3f} +- {opt['a_stderr']:.3f}, "
                 f"D* ~ C^{opt['b']:.3f} ({opt['method']})")
    return _json_clean(out), text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out, text = run(args)
    except MatscaleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    payload = json.dumps(out, indent=None if args.json else 2)
    if args.output:
        _write_atomic(args.output, payload + "\n")
    if args.json:
        print(payload)
    else:
        print(text)
    for w in out.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    if out.get("errorbars") is False:
        print("warning: this fit has NO error bars (see the table)", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
