"""Say why a run failed: the data row behind a non-finite loss, a one-line failure message.

A loss that becomes inf/NaN is blamed on the optimiser only when the batch looks sane; a
structure whose labels are far outside anything physical (`data.integrity.LIMITS`, or a
residual energy a million normalisation scales away) is named instead, with its file and row.
In-memory structures are checked when the normalisation is fitted (`normalization._labels`).
"""
from __future__ import annotations

import numpy as np

from matscale.data.integrity import LIMITS
from matscale.errors import DataError, MatscaleError

Z_LIMIT = 1e6  # residual energy per atom in normalisation scales


def where(dataset, i: int) -> str:
    """'<file> row <id> (sid ...)' for position `i` of a StructureDataset, else its sid."""
    try:
        g = int(dataset._sel[i])
        src = dataset._sources[int(dataset._file_of_row[g])]
        place = f"{src.path} row {int(dataset._id_of_row[g])}"
    except (AttributeError, IndexError, TypeError):
        place = None
    try:
        sid = dataset[i].info.get("sid")
    except Exception:  # noqa: BLE001 - naming the row must never hide the original failure
        sid = None
    return f"{place} (sid {sid})" if place and sid else (place or f"structure {i} (sid {sid})")


def _badness(atoms, norm) -> tuple[float, str]:
    """(how far beyond the limits, description) of one labelled structure."""
    res = getattr(atoms.calc, "results", None) or {}
    n = max(len(atoms), 1)
    e = float(res.get("energy", 0.0))
    f = np.abs(np.asarray(res.get("forces", np.zeros((1, 3))), dtype=float))
    s = np.abs(np.asarray(res.get("stress", np.zeros(6)), dtype=float))
    worst, text = 0.0, ""
    checks = [(abs(e) / n / LIMITS["energy"], f"energy {e:.3g} eV ({e / n:.3g} eV/atom)"),
              (float(np.nan_to_num(f, nan=np.inf).max(initial=0.0)) / LIMITS["force"],
               f"a force component of {f.max(initial=0.0):.3g} eV/Å"),
              (float(np.nan_to_num(s, nan=np.inf).max(initial=0.0)) / LIMITS["stress"],
               f"a stress component of {s.max(initial=0.0):.3g} eV/Å³")]
    if norm is not None:
        ref = float(np.asarray(norm.energy_ref)[atoms.numbers].sum())
        z = abs(e - ref) / n / max(float(norm.energy_scale), 1e-12) / Z_LIMIT
        checks.append((z, f"energy {e:.3g} eV, {abs(e - ref) / n / max(norm.energy_scale, 1e-12):.2g} "
                          "normalisation scales from the reference"))
    for ratio, desc in checks:
        if not np.isfinite(ratio) or ratio > worst:
            worst, text = (np.inf if not np.isfinite(ratio) else ratio), desc
    return worst, text


def nonfinite_loss_error(value: float, step: int, dataset, indices, norm=None) -> MatscaleError:
    """The error for a non-finite training loss: a DataError naming an implausible row, if any."""
    worst, culprit, desc = 1.0, None, ""
    for i in np.asarray(indices).tolist():
        try:
            bad, text = _badness(dataset[int(i)], norm)
        except Exception:  # noqa: BLE001
            continue
        if bad > worst:
            worst, culprit, desc = bad, int(i), text
    if culprit is not None:
        return DataError(f"the loss became {value} at step {step} because of {where(dataset, culprit)}: {desc} "
                         "is not physical; the data are at fault, not the optimiser: drop or fix that structure")
    return MatscaleError(f"the loss became {value} at step {step} with plausible labels in the batch; "
                         "lower lr or raise grad clipping (--grad-clip)")


def failure_message(exc: BaseException) -> str:
    """summary.json's `error` for an exception (interrupts say how to continue)."""
    if isinstance(exc, KeyboardInterrupt):
        why = str(exc) or "SIGINT"
        return f"interrupted ({why}); continue with --resume"
    if isinstance(exc, OSError) and not isinstance(exc, (MatscaleError,)):
        from matscale.fserrors import describe

        return f"{type(exc).__name__}: {describe(exc)}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
