"""The study's design checks: was the learning rate right, and does the data exponent depend
on the step budget?

    lr_check(table) -> DataFrame       per arch, size and rate: val loss over seeds, the best rate,
                                       whether the main series' rate is the best or within the seed spread
    budget_check(table, archs) -> DataFrame   per arch: the data exponent at the main steps and at
                                       the budget runs' steps (same fractions and seeds), their difference

Rows are told apart by the results table's `role` column ("main": the scaling points, "lr":
the learning-rate check's extra rates, "budget": the same data series at fewer steps); a
table without it (an older study) has only main points, and both checks say so.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from matscale.study.fits import fit_series, main_rows, plateau, zero_force_error
from matscale.study.results import EXPONENTS, Y, series, trainable, with_role

LR_COLUMNS = ["arch", "size", "frac", "steps", "lr", "val_loss_mean", "val_loss_std", "n", "main", "best_lr",
              "main_lr", "verdict"]
BUDGET_COLUMNS = ["arch", "size", "law", "points", "runs", "steps_main", "steps_budget", "alpha_main",
                  "alpha_main_low", "alpha_main_high", "alpha_budget", "alpha_budget_low", "alpha_budget_high",
                  "difference", "difference_low", "difference_high", "verdict", "reason"]


def _steps_of(rows: pd.DataFrame) -> float:
    """The runs' step budget: max_steps when set (> 0), else the median optimiser steps taken."""
    if "max_steps" in rows.columns:
        ms = pd.to_numeric(rows["max_steps"], errors="coerce")
        if (ms > 0).any():
            return float(ms[ms > 0].median())
    return float(pd.to_numeric(rows["steps"], errors="coerce").median()) if "steps" in rows.columns else np.nan


def _verdict(main: pd.Series | None, best: pd.Series, main_is_best: bool) -> str:
    if main is None:
        return "the main rate was not run here"
    if main_is_best:
        return "main rate is the best"
    spread = np.nanmax([main["std"], best["std"]]) if np.isfinite([main["std"], best["std"]]).any() else np.nan
    if not np.isfinite(spread):
        return "main rate is worse (single seeds: no spread to judge by)"
    if main["mean"] - best["mean"] <= spread:
        return "main rate is within the seed spread of the best"
    return "main rate is worse beyond the seed spread"


def lr_check(table: pd.DataFrame) -> pd.DataFrame:
    """Per arch, size and data fraction of the learning-rate check: one row per rate with the
    validation loss over seeds (mean, std, n), whether it is the main series' rate, the best
    rate, and a verdict on the main rate: the best, within the seed spread of the best (its mean
    within the larger of the two seed stds), or worse beyond it. Empty without "lr" runs."""
    done = trainable(table[table["finished"]])
    done = done[np.isfinite(done[Y]) & (done[Y] > 0)]
    extra = with_role(done, "lr")
    if extra.empty:
        return pd.DataFrame(columns=LR_COLUMNS)
    pool = pd.concat([with_role(done, "main"), extra])
    main_all = with_role(table, "main")
    rows = []
    for (arch, size, frac), g in extra.groupby(["arch", "size", "frac"], sort=False):
        same = pool[(pool["arch"] == arch) & (pool["size"] == size) & np.isclose(pool["frac"], frac)]
        if "max_steps" in same.columns:  # compare rates at the check's own step budget
            same = same[same["max_steps"].isin(g["max_steps"].unique())]
        rates = main_all[(main_all["arch"] == arch) & (main_all["size"] == size)]["lr"]
        rates = rates if len(rates) else main_all[main_all["arch"] == arch]["lr"]
        main_lr = float(rates.mode().iloc[0]) if len(rates) else np.nan
        agg = same.groupby("lr")[Y].agg(mean="mean", std=lambda s: s.std(ddof=1) if len(s) > 1 else np.nan,
                                        n="count")
        best_lr = float(agg["mean"].idxmin())
        hit = [lr for lr in agg.index if np.isclose(lr, main_lr)]
        main = agg.loc[hit[0]] if hit else None
        verdict = _verdict(main, agg.loc[best_lr], bool(hit) and np.isclose(hit[0], best_lr))
        for lr, r in agg.iterrows():
            rows.append({"arch": arch, "size": size, "frac": frac, "steps": _steps_of(same[same["lr"] == lr]),
                         "lr": float(lr), "val_loss_mean": r["mean"], "val_loss_std": r["std"], "n": int(r["n"]),
                         "main": bool(np.isclose(lr, main_lr)), "best_lr": best_lr, "main_lr": main_lr,
                         "verdict": verdict})
    return pd.DataFrame(rows, columns=LR_COLUMNS)


def _pairs(rows: pd.DataFrame) -> set:
    return set(zip(rows["frac"].round(12), rows["seed"]))


def budget_check(table: pd.DataFrame, archs: Sequence[str] | None = None, level: float = 0.95) -> pd.DataFrame:
    """Per arch: the data exponent of its data series at the main step budget and at the
    "budget" runs' budget, on the (fraction, seed) pairs both have; the same law on both (the
    main points' lowest-AICc identified law, else the power law); the difference with its
    `level` interval (stderrs in quadrature) and a verdict in plain words."""
    archs = list(archs) if archs is not None else list(pd.unique(trainable(table)["arch"]))
    done = trainable(table[table["finished"]])
    budget = with_role(done, "budget")
    zero = zero_force_error(table)
    z = float(stats.norm.ppf((1 + level) / 2))
    rows = []
    for arch in archs:
        row = dict.fromkeys(BUDGET_COLUMNS)
        row["arch"] = arch
        rows.append(row)
        b = budget[budget["arch"] == arch]
        if b.empty:
            row["reason"] = "no budget-sensitivity runs (role 'budget') for this architecture"
            continue
        size = b["size"].mode().iloc[0]
        b = b[b["size"] == size]
        m = series(main_rows(table), arch, "data", at=size)
        common = _pairs(m) & _pairs(b)
        m = m[[p in common for p in zip(m["frac"].round(12), m["seed"])]]
        b = b[[p in common for p in zip(b["frac"].round(12), b["seed"])]]
        row.update(size=size, points=m["frac"].nunique(), runs=len(m), steps_main=_steps_of(m), steps_budget=_steps_of(b))
        flat = plateau(pd.concat([m, b]), zero, arch, by="frac")
        if flat:
            row["reason"] = flat
            continue
        first = fit_series(m, "n_train", by="frac", arch=arch, kind="data")
        pair = None
        for law in dict.fromkeys([first.law or "power", "power"]):
            fm = fit_series(m, "n_train", laws=[law], by="frac", arch=arch, kind="data")
            fb = fit_series(b, "n_train", laws=[law], by="frac", arch=arch, kind="data")
            if fm.ok and fb.ok:
                pair = law, fm, fb
                break
        if pair is None:
            row["reason"] = "no law is identified at both budgets: " + "; ".join(
                f"{label}: {s.reason}" for label, s in (("main", fm), ("budget", fb)) if not s.ok)
            continue
        law, fm, fb = pair
        name = EXPONENTS[law]
        pm, pb = fm.fit.params[name], fb.fit.params[name]
        d = pm.value - pb.value
        se = float(np.hypot(pm.stderr, pb.stderr))
        lo, hi = d - z * se, d + z * se
        row.update(law=law, alpha_main=pm.value, alpha_main_low=pm.ci_low, alpha_main_high=pm.ci_high,
                   alpha_budget=pb.value, alpha_budget_low=pb.ci_low, alpha_budget_high=pb.ci_high,
                   difference=d, difference_low=lo, difference_high=hi,
                   verdict=("alpha changes beyond its uncertainty" if lo > 0 or hi < 0 else
                            "alpha does not change beyond its uncertainty"))
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS)


__all__ = ["lr_check", "budget_check"]
