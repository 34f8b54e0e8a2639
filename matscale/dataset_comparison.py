"""The same scaling series on two (or more) datasets: fitted exponents side by side.

    compare(studies, kind="data", archs=None, laws=("power",)) -> Comparison
        studies: {dataset label: study name}, e.g. {"EMT": "default", "CHGNet teacher": "teacher"}

Each study's series of each architecture (its data series by default: one size, fractions varied)
is fitted with the same law on every dataset (a pure power law L = A·D^−α by default: with 4-5
points per series the floor of a power law with floor is not identifiable, and one law for all
keeps the exponents comparable). Losses are in each dataset's own loss units (fitted on its
training split, `matscale.train.normalization`), so levels compare only loosely; exponents do.
A series without enough finished runs gets a reason instead of a number (as in `matscale.study`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pandas as pd

from matscale import study as mstudy


@dataclass
class Comparison:
    """summary: one row per (dataset, arch) with `estimate` ('α ± stderr [95% CI]'), value, ci_low,
    ci_high, points, decades, note; points: the fitted points with a `dataset` column;
    fits: {(dataset, arch): SeriesFit}; runs: every run of the compared series."""

    kind: str
    summary: pd.DataFrame
    points: pd.DataFrame
    runs: pd.DataFrame
    fits: dict = field(default_factory=dict)

    def wide(self) -> pd.DataFrame:
        """Architectures as rows, one exponent column per dataset, plus points/decades per dataset."""
        s = self.summary
        out = s.pivot(index="arch", columns="dataset", values="estimate")
        out.columns = [f"{c}: exponent" for c in out.columns]
        span = s.assign(span=s["points"].astype(str) + " pts, " + s["decades"].map("{:.2f}".format) + " dec")
        span = span.pivot(index="arch", columns="dataset", values="span")
        span.columns = [f"{c}: series" for c in span.columns]
        return out.join(span)

    def fits_of(self, arch: str) -> dict:
        """{dataset: FitResult} of `arch` (datasets without a fit left out), for charts.scaling_fit."""
        return {d: f.fit for (d, a), f in self.fits.items() if a == arch and f.ok}


def compare(studies: Mapping[str, str], kind: str = "data", archs: Sequence[str] | None = None,
            laws: Sequence[str] = ("power",), runs_root: str = "runs") -> Comparison:
    """Fit `kind` series ('data' or 'params') of `archs` (default: those every study has) per study."""
    tables = {label: mstudy.results(name, runs_root=runs_root) for label, name in studies.items()}
    if archs is None:
        common = None
        for t in tables.values():
            names = list(pd.unique(mstudy.trainable(t)["arch"]))
            common = names if common is None else [a for a in common if a in names]
        archs = common or []
    rows, points, runs, fits = [], [], [], {}
    for label, table in tables.items():
        series_fits = mstudy.scaling(table, kind, archs=list(archs), laws=list(laws))
        summary = mstudy.fit_summary(series_fits).assign(dataset=label)
        rows.append(summary)
        pts = mstudy.fit_points(series_fits)
        points.append(pts.assign(dataset=label))
        for arch, f in series_fits.items():
            fits[(label, arch)] = f
            if len(f.runs):
                runs.append(f.runs.assign(dataset=label))
    summary = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    cols = ["dataset", "arch"] + [c for c in summary.columns if c not in ("dataset", "arch")]
    return Comparison(kind, summary[cols] if len(summary) else summary,
                      pd.concat(points, ignore_index=True) if points else pd.DataFrame(),
                      pd.concat(runs, ignore_index=True) if runs else pd.DataFrame(), fits)
