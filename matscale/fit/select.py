"""Model selection: fit several laws to the same data and rank them by AICc.

AIC = n ln(chi2/n) + 2k (lmfit's definition, chi2 weighted when sigma is given) and
AICc = AIC + 2k(k+1)/(n-k-1). Only laws fitted to the same points, with the same loss,
space and weights, are comparable; `compare_laws` guarantees that.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from matscale.errors import FitError, MatscaleError
from matscale.fit.api import fit_law
from matscale.fit.laws import LAWS, ONE_D_LAWS


def compare_laws(x, y, laws=None, sigma=None, *, return_fits: bool = False, ci: str = "none", **kwargs):
    """Fit each law in `laws` (default: every 1-D law with enough points for AICc) and rank.

    Returns a DataFrame, best first: law, n_params, n_points, chi2, aic, aicc, delta_aicc,
    weight (Akaike weight), rank, error (why a law could not be fitted; it is then unranked).
    With return_fits=True also a dict law -> FitResult. Extra keywords go to `fit_law`
    (loss, log, replicates, n_starts, ...); intervals are skipped unless `ci` is given.
    """
    if laws is None:
        n_points = len(np.unique(np.asarray(x, dtype=float)))  # distinct sizes (replicates average)
        laws = [name for name in ONE_D_LAWS if LAWS[name].n_params + 2 <= n_points]
        if not laws:
            raise FitError(f"{n_points} distinct sizes are too few to compare laws (need >= 4)")
    rows, fits = [], {}
    for name in laws:
        law = LAWS.get(name)
        if law is None:
            raise FitError(f"unknown law {name!r}; choose from: {', '.join(LAWS)}")
        row = {"law": name, "n_params": law.n_params}
        try:
            fit = fit_law(x, y, name, sigma, ci=ci, **kwargs)
        except MatscaleError as exc:
            row.update(n_points=np.nan, chi2=np.nan, aic=np.nan, aicc=np.nan, error=str(exc))
        else:
            fits[name] = fit
            row.update(n_points=fit.n_points, chi2=fit.chi2, aic=fit.aic,
                       aicc=np.nan if fit.aicc is None else fit.aicc, error="")
        rows.append(row)
    table = pd.DataFrame(rows)
    best = table["aicc"].min()
    table["delta_aicc"] = table["aicc"] - best
    rel = np.exp(-0.5 * table["delta_aicc"])
    table["weight"] = rel / rel.sum(skipna=True)
    table["rank"] = table["aicc"].rank(method="min")
    table = table.sort_values(["rank", "law"], na_position="last").reset_index(drop=True)
    table = table[["law", "n_params", "n_points", "chi2", "aic", "aicc", "delta_aicc", "weight", "rank", "error"]]
    return (table, fits) if return_fits else table
