"""The scaling study behind the book: its runs, the fits, the tables and one call per page.

A study is a sweep file (`book/sweeps/<study>.yaml`, run with `python -m matscale sweep`).

    results.py  study_path, plan, results, trainable, with_role, baselines, curves, series, aggregate,
                status_table, equivariance (stored measurements)
    fits.py     scaling, fit_series, term_exponents, the zero-force rule (SeriesFit); re-exports
    multi.py    frontier (final points of completed runs), overall_front, joint (grids only),
                joint_points, joint_slices (FrontierFit, JointFit)
    extrapolate.py  extrapolation, forecast, PredictionBand (prediction intervals with seed noise)
    checks.py   lr_check, budget_check (the design checks)
    tables.py   format_estimate, fit_points, fit_summary, parameters, fit_notes, allocation,
                comparison, exponent_rows
    pages.py    one function per book page returning a `Page` (tables, charts, text)
    sentences.py  the finding each page opens with (`Page.finding`), computed from its fits
    findings.py   the Findings page: the study's exponents beside the published ones (PUBLISHED)
    dataset_page.py  the dataset page's validation selection (matscale.data.composition)
    cli.py      `python -m matscale study [STUDY]` (= `python -m matscale.study`)

Columns of `results`: the point's settings, `status` (completed, stopped_early, failed,
running or missing), `finished`, `params` (non-embedding parameters N), `params_total`,
`n_train` (training structures D), `samples_seen`, `steps`, `flops` (training FLOPs C),
`val_loss` (best validation loss: the loss of the checkpoint a run keeps), `final_val_loss`,
`wall_s`, the best checkpoint's physical errors (`val_energy_mae_eV_atom`,
`val_force_l2mae_eV_A`, `val_stress_mae_eV_A3`) and `error`.
Everything is importable from `matscale.study` directly (`from matscale import study`).
"""
from __future__ import annotations

from matscale.runs import EQUIVARIANCE_FILE
from matscale.study.cli import main
from matscale.study.checks import budget_check, lr_check
from matscale.study.fits import (FrontierFit, JointFit, JointSlice, PredictionBand, SeriesFit, extrapolation,
                                 final_points, fit_series, flops_per_param_sample, forecast, frontier, joint,
                                 joint_points, joint_slices, overall_front, scaling, term_exponents,
                                 zero_force_error)
from matscale.study.results import (AXES, AXIS_TITLES, EXPONENTS, MIN_SEEDS_FOR_WEIGHTS, PHYSICAL, SETTING,
                                    STUDY_DIR, Y, aggregate, baseline_archs, baselines, curves, equivariance,
                                    plan, repo_root, results, series, status_table, study_path, trainable)
from matscale.study.tables import (allocation, comparison, exponent_rows, exponent_table, fit_notes, fit_points, fit_summary,
                                   format_estimate, parameters)

__all__ = [
    "EQUIVARIANCE_FILE", "main", "FrontierFit", "JointFit", "JointSlice", "SeriesFit", "extrapolation",
    "PredictionBand", "budget_check", "exponent_table", "final_points", "fit_notes", "forecast", "lr_check", "parameters",
    "term_exponents", "zero_force_error", "fit_series", "flops_per_param_sample", "frontier", "joint", "joint_points", "joint_slices",
    "overall_front", "scaling", "AXES", "AXIS_TITLES", "EXPONENTS", "MIN_SEEDS_FOR_WEIGHTS", "PHYSICAL",
    "SETTING", "STUDY_DIR", "Y", "aggregate", "baseline_archs", "baselines", "curves", "equivariance", "plan",
    "repo_root", "results", "series", "status_table", "study_path", "trainable", "allocation", "comparison",
    "exponent_rows", "fit_points", "fit_summary", "format_estimate",
]
