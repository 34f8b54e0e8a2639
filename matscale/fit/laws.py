"""The scaling laws: formulas, parameter names, internal (well-conditioned) parameters.

Every law is fitted in *internal* parameters on rescaled inputs u = ln(x / x_ref), with
x_ref the geometric mean of the data, and reported in the user's units:

- amplitudes are fitted as the log of the amplitude at x_ref (``lnA`` = ln(A x_ref^-alpha)),
  so amplitude and exponent are nearly uncorrelated and of order one;
- breaks are fitted as ``lnxc`` = ln(x_c / x_ref);
- floors and exponents are fitted as they are.

Each reported parameter r is tied to the internal vector theta by one linear relation,
g(r) = sum_j M[r, j] theta_j + b[r], with g = ln for positive parameters (amplitudes,
breaks) and g = identity otherwise. M depends only on ln x_ref; it is square and
invertible, so the two parametrisations map one to one. That relation gives exact
delta-method errors (`jacobian`), profiles on reported parameters (pin one row) and
conversion of true parameters into starts (`to_internal`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from matscale.errors import FitError

LN10 = float(np.log(10.0))
Y_KEY = "y"  # ln_ref entry holding ln y_ref when the losses were rescaled (see api.y_reference)
FLOORS = ("E", "L_inf")  # internal parameters in units of y
AMPLITUDES = ("lnA", "lnB", "lnF")  # internal parameters that are ln of an amplitude in units of y


def _softplus(t):
    """ln(1 + e^t), without overflow."""
    return np.logaddexp(0.0, t)


def _col(theta, i):
    """Column i of a (k,) or (m, k) parameter array, shaped to broadcast against (n,)."""
    return np.asarray(theta)[..., i, None]


@dataclass(frozen=True)
class Reported:
    """One reported parameter: g(value) = internal[pivot] + sum coef*internal + offset.

    `scaled` maps other internal parameter names to the input whose ln x_ref is their
    coefficient (e.g. A = exp(lnA + alpha ln x_ref) -> scaled={"alpha": "x"}); `offset`
    names the input whose ln x_ref is added (x_c = exp(lnxc + ln x_ref)).
    """

    name: str
    pivot: str
    log: bool = False
    scaled: dict[str, str] = field(default_factory=dict)
    offset: str | None = None
    meaning: str = ""


@dataclass(frozen=True)
class Law:
    """A scaling law: its formula, inputs, reported and internal parameters."""

    name: str
    formula: str
    inputs: tuple[str, ...]
    internal: tuple[str, ...]
    reported: tuple[Reported, ...]
    model: Callable  # (theta (..., k), U: dict input -> u (n,)) -> f (..., n)
    candidates: Callable  # (U, y) -> (m, k) starting points
    description: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """Reported parameter names, in order."""
        return tuple(r.name for r in self.reported)

    @property
    def n_params(self) -> int:
        return len(self.internal)

    # --- reported <-> internal --------------------------------------------------------
    def linear_map(self, ln_ref: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(M, b) with g(reported) = M @ theta + b."""
        k = self.n_params
        idx = {n: i for i, n in enumerate(self.internal)}
        M = np.zeros((k, k))
        b = np.zeros(k)
        ln_y = float(ln_ref.get(Y_KEY, 0.0))  # y was fitted as y / y_ref: floors scale, ln amplitudes shift
        for r, rep in enumerate(self.reported):
            M[r, idx[rep.pivot]] = np.exp(ln_y) if rep.pivot in FLOORS else 1.0
            for name, inp in rep.scaled.items():
                M[r, idx[name]] = ln_ref[inp]
            if rep.offset is not None:
                b[r] = ln_ref[rep.offset]
            if rep.pivot in AMPLITUDES:
                b[r] += ln_y
        return M, b

    @property
    def scales_with_y(self) -> bool:
        """True when every term carries an amplitude or floor, so y may be rescaled before fitting."""
        return any(r.pivot in AMPLITUDES for r in self.reported)

    def log_mask(self) -> np.ndarray:
        return np.array([rep.log for rep in self.reported])

    def to_reported(self, theta, ln_ref) -> np.ndarray:
        """Reported values for internal theta of shape (k,) or (m, k)."""
        M, b = self.linear_map(ln_ref)
        g = np.asarray(theta) @ M.T + b
        return np.where(self.log_mask(), np.exp(np.clip(g, -700, 700)), g)

    def to_internal(self, values: dict[str, float], ln_ref) -> np.ndarray:
        """Internal theta for reported values {name: value} (e.g. true parameters)."""
        M, b = self.linear_map(ln_ref)
        g = np.array([np.log(values[n]) if rep.log else values[n] for n, rep in zip(self.names, self.reported)])
        return np.linalg.solve(M, g - b)

    def jacobian(self, theta, ln_ref) -> np.ndarray:
        """d(reported)/d(theta) at theta (delta method)."""
        M, _ = self.linear_map(ln_ref)
        vals = self.to_reported(theta, ln_ref)
        scale = np.where(self.log_mask(), vals, 1.0)
        return M * scale[:, None]

    def bounds(self, U: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
        """Internal bounds: floors >= 0 (losses are positive); breaks within one decade of
        the data so a break the data cannot see does not run off to infinity."""
        out = {}
        for n in self.internal:
            if n in ("E", "L_inf"):
                out[n] = (0.0, np.inf)
            elif n == "lnxc":
                u = U[self.inputs[0]]
                out[n] = (float(u.min()) - LN10, float(u.max()) + LN10)
            else:
                out[n] = (-np.inf, np.inf)
        return out


# --- model functions -------------------------------------------------------------------
def _power(theta, U):
    return np.exp(_col(theta, 0) - _col(theta, 1) * U["x"])


def _power_floor(theta, U):
    return _col(theta, 0) + np.exp(_col(theta, 1) - _col(theta, 2) * U["x"])


def _broken_log(a1, a2, lnxc, u):
    t = lnxc - u  # ln(x_c / x)
    return a2 * t + (a1 - a2) * _softplus(t)


def _broken(theta, U):
    return np.exp(_broken_log(_col(theta, 0), _col(theta, 1), _col(theta, 2), U["x"]))


def _broken_amp(theta, U):
    return np.exp(_col(theta, 0) + _broken_log(_col(theta, 1), _col(theta, 2), _col(theta, 3), U["x"]))


def _broken_floor(theta, U):
    return _col(theta, 0) + np.exp(_col(theta, 1) + _broken_log(_col(theta, 2), _col(theta, 3), _col(theta, 4), U["x"]))


def _joint(theta, U):
    return (
        _col(theta, 0)
        + np.exp(_col(theta, 1) - _col(theta, 2) * U["N"])
        + np.exp(_col(theta, 3) - _col(theta, 4) * U["D"])
    )


# --- starting points: grids over the nonlinear parameters, linear solves for the rest ---
_EXPONENTS = np.geomspace(0.02, 3.0, 14)
_FLOOR_FRACTIONS = (0.0, 0.3, 0.6, 0.8, 0.9, 0.97)


def _lstsq(X, z):
    """Least-squares coefficients for a batch of designs X (m, n, p) and targets z (m, n) or (n,)."""
    z = np.broadcast_to(z, X.shape[:2])
    XtX = np.einsum("mni,mnj->mij", X, X) + 1e-12 * np.eye(X.shape[2])
    return np.linalg.solve(XtX, np.einsum("mni,mn->mi", X, z)[..., None])[..., 0]


def _cand_power(U, y):
    u = U["x"]
    c0, c1 = _lstsq(np.stack([np.ones_like(u), -u], axis=1)[None], np.log(y))[0]
    return np.array([[c0, c1], [c0, 0.5 * c1], [c0, 2.0 * c1]])


def _cand_power_floor(U, y):
    u = U["x"]
    ones = np.ones((_EXPONENTS.size, u.size))
    # linear in (E, A_ref) once alpha is fixed
    E, amp = _lstsq(np.stack([ones, np.exp(-_EXPONENTS[:, None] * u)], axis=2), y).T
    ok = amp > 0
    first = np.column_stack([np.maximum(E, 0.0), np.log(np.where(ok, amp, 1.0)), _EXPONENTS])[ok]
    # log-linear in (lnA, alpha) once E is fixed
    floors = np.array(_FLOOR_FRACTIONS) * y.min()
    X = np.broadcast_to(np.stack([np.ones_like(u), -u], axis=1), (floors.size, u.size, 2))
    c = _lstsq(X, np.log(y[None, :] - floors[:, None]))
    return np.vstack([first, np.column_stack([floors, c])])


def _cand_broken(U, y, amplitude=False, floor=False):
    u = U["x"]
    floors = np.array(_FLOOR_FRACTIONS) * y.min() if floor else np.zeros(1)
    grid = np.linspace(u.min() - 1.0, u.max() + 1.0, 15)
    E, c = (g.ravel() for g in np.meshgrid(floors, grid, indexing="ij"))
    t = c[:, None] - u[None, :]
    s = _softplus(t)
    cols = [s, t - s] if not amplitude else [np.ones_like(t), s, t - s]
    # ln(y - E) is linear in (a1, a2) [and lnA] once the break (and floor) is fixed
    coef = _lstsq(np.stack(cols, axis=2), np.log(y[None, :] - E[:, None]))
    out = np.column_stack([coef, c])
    return np.column_stack([E, out]) if floor else out


def _cand_joint(U, y):
    uN, uD = U["N"], U["D"]
    alpha, beta = (g.ravel() for g in np.meshgrid(_EXPONENTS[::2], _EXPONENTS[::2]))
    ones = np.ones((alpha.size, uN.size))
    # linear in (E, A_ref, B_ref) once the exponents are fixed
    X = np.stack([ones, np.exp(-alpha[:, None] * uN), np.exp(-beta[:, None] * uD)], axis=2)
    E, a, b = _lstsq(X, y).T
    ok = (a > 0) & (b > 0)
    E0 = 0.5 * y.min()
    half = np.log(0.5 * np.mean(y - E0))  # fallback: split the excess loss between the terms
    lnA = np.where(ok, np.log(np.where(ok, a, 1.0)), half)
    lnB = np.where(ok, np.log(np.where(ok, b, 1.0)), half)
    return np.column_stack([np.where(ok, np.maximum(E, 0.0), E0), lnA, alpha, lnB, beta])


# --- the registry ------------------------------------------------------------------------
def _amp(name="A", exponent="alpha", inp="x", internal="lnA", meaning="amplitude"):
    return Reported(name, internal, log=True, scaled={exponent: inp}, meaning=meaning)


LAWS: dict[str, Law] = {}


def _add(law: Law) -> None:
    LAWS[law.name] = law


_add(Law(
    "power", "L = A * x^-alpha", ("x",), ("lnA", "alpha"),
    (_amp(), Reported("alpha", "alpha", meaning="exponent")),
    _power, _cand_power, "pure power law (a straight line in log-log space)",
))
_add(Law(
    "power_floor", "L = E + A * x^-alpha", ("x",), ("E", "lnA", "alpha"),
    (Reported("E", "E", meaning="irreducible loss (floor)"), _amp(), Reported("alpha", "alpha", meaning="exponent")),
    _power_floor, _cand_power_floor, "power law with an irreducible floor; (N_0/N)^a + L_inf has A = N_0^a",
))
_add(Law(
    "broken", "L = (x_c/x)^alpha2 * (1 + x_c/x)^(alpha1 - alpha2)", ("x",), ("alpha1", "alpha2", "lnxc"),
    (
        Reported("alpha1", "alpha1", meaning="slope below the break (x << x_c)"),
        Reported("alpha2", "alpha2", meaning="slope above the break (x >> x_c)"),
        Reported("x_c", "lnxc", log=True, offset="x", meaning="break"),
    ),
    _broken, _cand_broken, "broken power law, one break (Caballero et al. 2022), no amplitude or floor",
))
_add(Law(
    "broken_amp", "L = A * (x_c/x)^alpha2 * (1 + x_c/x)^(alpha1 - alpha2)", ("x",),
    ("lnA", "alpha1", "alpha2", "lnxc"),
    (
        Reported("A", "lnA", log=True, meaning="amplitude"),
        Reported("alpha1", "alpha1", meaning="slope below the break (x << x_c)"),
        Reported("alpha2", "alpha2", meaning="slope above the break (x >> x_c)"),
        Reported("x_c", "lnxc", log=True, offset="x", meaning="break"),
    ),
    _broken_amp, lambda U, y: _cand_broken(U, y, amplitude=True), "broken power law with an amplitude",
))
_add(Law(
    "broken_floor", "L = E + A * (x_c/x)^alpha2 * (1 + x_c/x)^(alpha1 - alpha2)", ("x",),
    ("E", "lnA", "alpha1", "alpha2", "lnxc"),
    (
        Reported("E", "E", meaning="irreducible loss (floor)"),
        Reported("A", "lnA", log=True, meaning="amplitude"),
        Reported("alpha1", "alpha1", meaning="slope below the break (x << x_c)"),
        Reported("alpha2", "alpha2", meaning="slope above the break (x >> x_c)"),
        Reported("x_c", "lnxc", log=True, offset="x", meaning="break"),
    ),
    _broken_floor, lambda U, y: _cand_broken(U, y, amplitude=True, floor=True),
    "broken power law with amplitude and floor",
))
_add(Law(
    "joint", "L = E + A * N^-alpha + B * D^-beta", ("N", "D"), ("E", "lnA", "alpha", "lnB", "beta"),
    (
        Reported("E", "E", meaning="irreducible loss"),
        _amp("A", "alpha", "N"),
        Reported("alpha", "alpha", meaning="parameter exponent"),
        _amp("B", "beta", "D", internal="lnB"),
        Reported("beta", "beta", meaning="data exponent"),
    ),
    _joint, _cand_joint, "Chinchilla joint law in parameters N and data D",
))
_add(Law(
    "frontier", "L = L_inf + F * C^-gamma", ("x",), ("L_inf", "lnF", "gamma"),
    (
        Reported("L_inf", "L_inf", meaning="loss at infinite compute"),
        _amp("F", "gamma", internal="lnF"),
        Reported("gamma", "gamma", meaning="compute exponent"),
    ),
    _power_floor, _cand_power_floor, "compute frontier (Pareto front of FLOPs vs loss)",
))

_add(Law(
    "frontier_power", "L = F * C^-gamma", ("x",), ("lnF", "gamma"),
    (_amp("F", "gamma", internal="lnF"), Reported("gamma", "gamma", meaning="compute exponent")),
    _power, _cand_power, "compute frontier without a floor (the fallback when the front does not identify L_inf)",
))

FRONTIER_LAWS = ("frontier", "frontier_power")
ONE_D_LAWS = tuple(n for n, law in LAWS.items() if law.inputs == ("x",) and n not in FRONTIER_LAWS)


def get_law(name: str) -> Law:
    """The law called `name`, or a FitError listing the known ones."""
    try:
        return LAWS[name]
    except KeyError:
        raise FitError(f"unknown law {name!r}; choose one of: {', '.join(LAWS)}") from None
