"""Scaling-law fits with honest uncertainty, on lmfit, for any table of (size, loss) results.

Laws (parameter names as reported):
    power         L = A x^-alpha                                         A, alpha
    power_floor   L = E + A x^-alpha                                     E, A, alpha
    broken        L = (x_c/x)^alpha2 (1 + x_c/x)^(alpha1-alpha2)         alpha1, alpha2, x_c
    broken_amp    A times the broken law                                 A, alpha1, alpha2, x_c
    broken_floor  E + A times the broken law                             E, A, alpha1, alpha2, x_c
    joint         L(N, D) = E + A N^-alpha + B D^-beta                   E, A, alpha, B, beta
    frontier      L(C) = L_inf + F C^-gamma on the compute Pareto front  L_inf, F, gamma
    frontier_power  L(C) = F C^-gamma, the front without a floor         F, gamma

In the broken law alpha1 is the log-log slope below the break (x << x_c, where
(x_c/x)^alpha1 dominates) and alpha2 the slope above it (x >> x_c). The optimetal form
(N_0/N)^a + L_inf is `power_floor` with E = L_inf, A = N_0^a, alpha = a.

Public API:
    fit_law(x, y, law, sigma=None, loss=, log=, replicates=, n_starts=, bootstrap=, ci=, ...)
    fit_joint(N, D, y, ...)                  compare_laws(x, y, laws=None, ...)
    compute_frontier(df, flops_col, loss_col, run_col)   fit_frontier(df, ...)
    compute_optimal(joint_fit, C=None)       aggregate_replicates(df, x, y)
    FitResult (.params, .correlations, .aic, .aicc, .predict, .band, .to_dict, .table,
               .identified, .why_not, .note, .parameters())   identification(fit): the one rule
"""
from matscale.fit.api import fit_joint, fit_law
from matscale.fit.frontier import compute_frontier, fit_frontier
from matscale.fit.identify import identification
from matscale.fit.inputs import aggregate_replicates
from matscale.fit.laws import LAWS, ONE_D_LAWS, get_law
from matscale.fit.optimal import compute_optimal
from matscale.fit.result import FitResult, ParamEstimate
from matscale.fit.select import compare_laws

__all__ = [
    "LAWS", "ONE_D_LAWS", "FitResult", "ParamEstimate", "aggregate_replicates", "compare_laws",
    "compute_frontier", "compute_optimal", "fit_frontier", "fit_joint", "fit_law", "get_law", "identification",
]
