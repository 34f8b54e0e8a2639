"""altair chart builders for the book: DataFrames (or arrays) in, altair charts out.

Every builder returns an altair top-level chart (`alt.Chart`, or `alt.LayerChart` when a
chart overlays data and a fit) whose `to_dict()` is a valid Vega-Lite spec with the data
inlined, so it renders offline through `matscale.book` and saves to SVG/PNG with
`matscale.book.save`. Nothing is hard-coded: every value comes from the arguments.

    loss_curves(metrics, x="epoch")          total loss and its parts, train and val, vs x
    parity(true, pred, "forces", "eV/Å")     predicted vs true with y = x and the MAE
    histogram(values, "energy", "eV/atom")   histogram of raw values (binned here)
    stats_histograms(hist_df)                pre-binned histograms per quantity/subset/split
    scaling_fit(points, "N", "val_loss", fit)   log-log points, error bars, fitted law, band
    frontier(curves, front, fit)             all runs' loss vs compute, Pareto front, its fit
    extrapolation(points, x, y, fit)         fit on the smaller runs, predicted band vs the held-out run
    exponents(table)                         fitted exponents with confidence intervals, per architecture
    study_grid(grid)                         a study's points at their N and D

Modules: training (loss curves, parity), data (histograms), scaling (fits, frontiers, exponents).
"""
from __future__ import annotations

from matscale.charts._base import AXIS_TITLES, RUN_COLUMNS, SPLITS, axis_title
from matscale.charts.data import histogram, histogram_table, stats_histograms
from matscale.charts.scaling import exponents, extrapolation, fit_curve, frontier, scaling_fit, study_grid
from matscale.charts.training import long_metrics, loss_curves, metric_names, parity

__all__ = ["AXIS_TITLES", "RUN_COLUMNS", "SPLITS", "axis_title", "histogram", "histogram_table", "stats_histograms", "exponents",
           "extrapolation", "fit_curve", "frontier", "scaling_fit", "study_grid", "long_metrics", "loss_curves",
           "metric_names", "parity"]
