"""`FitResult`: one fitted law with its uncertainty, ready for tables, JSON and charts."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import lmfit
import numpy as np
import pandas as pd

from matscale.errors import FitError
from matscale.fit import identify, uncertainty
from matscale.fit.engine import Problem
from matscale.fit.inputs import as_array

_LOSS_TEXT = {"lsq": "least squares", "huber": "Huber"}


def _num(v):
    """JSON-safe float (None for missing / non-finite)."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


@dataclass
class ParamEstimate:
    """A reported parameter: value, standard error and confidence interval (None = unknown)."""

    name: str
    value: float
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    meaning: str = ""

    @property
    def ci(self) -> tuple[float | None, float | None]:
        return (self.ci_low, self.ci_high)

    def to_dict(self, level: float = 0.95) -> dict:
        return {"value": _num(self.value), "stderr": _num(self.stderr),
                ci_key(level): [_num(self.ci_low), _num(self.ci_high)]}


def ci_key(level: float) -> str:
    """JSON key of the interval: 'ci95' at level 0.95."""
    return f"ci{100 * level:g}"


@dataclass(repr=False)
class FitResult:
    """A fitted scaling law.

    Attributes: `law`, `formula`, `params` (name -> ParamEstimate), `covariance` and
    `correlations` (DataFrames over reported parameters, None without error bars), `aic`,
    `aicc`, `chi2`, `n_points`, `n_params`, `errorbars` (False when no uncertainty could be
    estimated; `errorbars_note` says why), `warnings`, `ci_method`, `ci_level`, `loss`,
    `log`, `x_ref` (the internal rescaling), `data` (the fitted points with fitted values
    and residuals), `samples` (bootstrap draws of the parameters, or None) and
    `lmfit_result` (lmfit's MinimizerResult of the best start, internal parameters).
    """

    law: str
    formula: str
    params: dict[str, ParamEstimate]
    aic: float
    aicc: float | None
    chi2: float
    n_points: int
    n_params: int
    errorbars: bool
    ci_method: str
    ci_level: float
    loss: str
    log: bool
    x_ref: dict[str, float]
    data: pd.DataFrame
    covariance: pd.DataFrame | None = None
    correlations: pd.DataFrame | None = None
    samples: pd.DataFrame | None = None
    errorbars_note: str | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_starts: int = 1
    n_agree: int = 1
    at_bounds: tuple[str, ...] = ()  # reported parameters whose fitted value is a bound of the fit
    log_params: tuple[str, ...] = ()  # reported parameters fitted on the ln scale (amplitudes, breaks)
    lmfit_result: lmfit.minimizer.MinimizerResult | None = None
    _problem: Problem | None = field(default=None, repr=False)
    _theta: np.ndarray | None = field(default=None, repr=False)
    _cov: np.ndarray | None = field(default=None, repr=False)
    _theta_samples: np.ndarray | None = field(default=None, repr=False)

    # --- access -----------------------------------------------------------------------
    def __getitem__(self, name: str) -> ParamEstimate:
        return self.params[name]

    @property
    def values(self) -> dict[str, float]:
        """{name: value} of the reported parameters."""
        return {n: p.value for n, p in self.params.items()}

    @property
    def dof(self) -> int:
        return self.n_points - self.n_params

    # --- identification (matscale.fit.identify: the one rule) ----------------------------
    @property
    def identified(self) -> bool:
        """True when these points determine every parameter (see matscale.fit.identify)."""
        return identify.identification(self)[0]

    @property
    def why_not(self) -> list[str]:
        """Short reasons the law is not identified ([] when it is)."""
        return identify.identification(self)[1]

    @property
    def note(self) -> str:
        """The one short note of this fit: why it is not identified, other warnings ('' if none)."""
        return identify.note(self)

    def parameters(self, **label) -> pd.DataFrame:
        """Tidy parameter table: [label columns,] law, parameter, value, stderr, ci_low, ci_high
        (the interval at `ci_level`, NaN where open), identified."""
        return pd.DataFrame(identify.parameter_rows(self, label or None))

    # --- evaluation ---------------------------------------------------------------------
    def _U(self, inputs) -> dict[str, np.ndarray]:
        law = self._problem.law
        if len(inputs) != len(law.inputs):
            raise FitError(f"law {self.law!r} takes {len(law.inputs)} input(s) {law.inputs}; got {len(inputs)}")
        arrays = []
        for name, values in zip(law.inputs, inputs):
            arr = np.atleast_1d(as_array(np.ravel(values), name))
            if not np.all(np.isfinite(arr) & (arr > 0)):
                raise FitError(f"{name} must be finite and > 0 to evaluate the law")
            arrays.append(arr)
        try:  # e.g. a grid of N at one D
            arrays = np.broadcast_arrays(*arrays)
        except ValueError:
            raise FitError(f"inputs have different lengths {[len(a) for a in arrays]}") from None
        return {name: np.log(a) - self._problem.ln_ref[name] for name, a in zip(law.inputs, arrays)}

    def predict(self, *inputs) -> np.ndarray:
        """The fitted law at `x` (or at `N, D` for the joint law; scalars broadcast)."""
        return self._problem.law.model(self._theta, self._U(inputs)) * self._problem.y_scale

    def band(self, *inputs, level: float | None = None, kind: str = "confidence",
             noise_sigma=None) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) band of the law at `x` (or `N, D`), for interpolation or extrapolation.

        kind="confidence": uncertainty of the fitted curve, from the bootstrap draws when
        the fit was bootstrapped, else from the covariance (like lmfit's eval_uncertainty,
        on ln f so the band stays positive). kind="prediction" adds the scatter of a new
        point: the residual scale of an unweighted fit, or `noise_sigma` (in units of y).
        """
        if kind not in ("confidence", "prediction"):
            raise FitError(f"kind must be 'confidence' or 'prediction', not {kind!r}")
        level = self.ci_level if level is None else level
        U = self._U(inputs)
        ys = self._problem.y_scale  # the law is fitted to y / y_ref (see api.y_reference)
        noise = None
        if kind == "prediction":
            f = self._problem.law.model(self._theta, U) * ys
            if noise_sigma is not None:
                noise = (np.asarray(noise_sigma, dtype=float) / f) ** 2
            elif self._problem.sigma is None:
                s2 = self.chi2 / max(self.dof, 1) * ys**2
                noise = np.full_like(f, s2) if self.log else s2 / f**2
            else:
                raise FitError("a prediction band of a weighted fit needs noise_sigma (the spread of a new point)")
        if self._theta_samples is not None and len(self._theta_samples) >= 10:
            lo, hi = uncertainty.bootstrap_band(self._problem, self._theta_samples, U, level, noise)
            return lo * ys, hi * ys
        if self._cov is None:
            raise FitError(f"no band: this fit has no error bars ({self.errorbars_note or 'no covariance'})")
        lo, hi = uncertainty.covariance_band(self._problem, self._theta, self._cov, U, level, noise)
        return lo * ys, hi * ys

    # --- output -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The JSON shape: law, params {name: value, stderr, ci95}, aic, aicc, n_points, ..."""
        out = {
            "law": self.law,
            "formula": self.formula,
            "params": {n: p.to_dict(self.ci_level) for n, p in self.params.items()},
            "aic": _num(self.aic),
            "aicc": _num(self.aicc),
            "n_points": self.n_points,
            "n_params": self.n_params,
            "chi2": _num(self.chi2),
            "loss": self.loss,
            "log": self.log,
            "ci_method": self.ci_method,
            "ci_level": self.ci_level,
            "errorbars": self.errorbars,
            "warnings": list(self.warnings),
            "identified": self.identified,
            "why_not": self.why_not,
            "x_ref": {k: _num(v) for k, v in self.x_ref.items()},
        }
        if self.correlations is not None:
            c = self.correlations
            out["correlations"] = {a: {b: _num(c.loc[a, b]) for b in c.columns if b != a} for a in c.index}
        return out

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    def table(self) -> str:
        """A readable text summary: parameters with errors and intervals, fit statistics."""
        space = "log" if self.log else "linear"
        weights = "no sigma" if self._problem is None or self._problem.sigma is None else (
            "sigma absolute" if self._problem.absolute_sigma else "sigma relative")
        lines = [
            f"law {self.law}: {self.formula}",
            f"  {_LOSS_TEXT.get(self.loss, self.loss)} in {space} space, {weights}; "
            f"{self.n_points} points, {self.n_params} parameters; best of {self.n_starts} starts "
            f"({self.n_agree} agree)",
            f"  chi2 {self.chi2:.4g}   AIC {self.aic:.4g}   AICc "
            + ("n/a" if self.aicc is None else f"{self.aicc:.4g}"),
            "",
            f"  {'param':<8} {'value':>12} {'stderr':>11}   {100 * self.ci_level:g}% CI ({self.ci_method})",
        ]

        def fmt(v):
            return "-" if v is None or not np.isfinite(v) else f"{v:.5g}"

        for p in self.params.values():
            ci = f"[{fmt(p.ci_low)}, {fmt(p.ci_high)}]" if (p.ci_low is not None or p.ci_high is not None) else "-"
            lines.append(f"  {p.name:<8} {fmt(p.value):>12} {fmt(p.stderr):>11}   {ci}")
        if self.correlations is not None:
            names = list(self.correlations.index)
            pairs = [f"{a}/{b} {self.correlations.loc[a, b]:+.2f}" for i, a in enumerate(names) for b in names[i + 1:]]
            lines += ["", "  correlations: " + ", ".join(pairs)]
        if not self.errorbars:
            lines += ["", f"  NO ERROR BARS: {self.errorbars_note}"]
        if not self.identified:
            lines += ["", f"  NOT IDENTIFIED by these points: {'; '.join(self.why_not)}"]
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        parts = []
        for p in self.params.values():
            err = "" if p.stderr is None else f"±{p.stderr:.2g}"
            parts.append(f"{p.name}={p.value:.4g}{err}")
        aicc = "n/a" if self.aicc is None else f"{self.aicc:.4g}"
        flag = "" if self.errorbars else ", NO ERROR BARS"
        return f"<FitResult {self.law}: {', '.join(parts)}; n={self.n_points}, AICc={aicc}{flag}>"
