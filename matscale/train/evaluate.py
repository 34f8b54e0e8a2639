"""`python -m matscale evaluate RUN_DIR [--split val]`: a trained run's errors in meV units.

Loads the run's best checkpoint (`torch.load(weights_only=True)`), predicts its validation
(or training) structures and prints energy-per-atom, force and stress MAEs and the loss;
with `matscale.models.symmetry` present it also reports the rotation-equivariance error.

    evaluate_run(run_dir, split="val", which="best", ...) -> dict of metrics (eV units)
    predictions(run_dir, split="val", ...) -> parity arrays (see validation.parity)
    measure_equivariance(run_dir) / store_equivariance(run_dir): rotation errors of the best
        checkpoint, stored as <run_dir>/equivariance.json (read back with runs.read_equivariance)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _setup(run_dir, split, which, data, frac, device, limit):
    from matscale import locks
    from matscale.train.checkpoint import load_model
    from matscale.train.data import open_eval_split

    run_dir = Path(run_dir)
    with locks.run_lock(run_dir.parent, run_dir.name, required=False):  # refused while the run trains
        model, config, ckpt = load_model(run_dir, which, device)
    dataset = open_eval_split(config, split, data=data, frac=frac)
    indices = np.arange(len(dataset) if limit is None else min(limit, len(dataset)))
    return model, config, ckpt, dataset, indices


def evaluate_run(run_dir: str | Path, split: str = "val", which: str = "best", data: str | None = None,
                 frac: float | None = None, device: str = "cpu", batch_size: int = 32,
                 limit: int | None = None, equivariance: bool = True) -> dict:
    """Loss and MAEs (eV/atom, eV/Å, eV/Å³) of a run's checkpoint on its `split` structures."""
    from matscale.train.loss import LossScales, LossWeights
    from matscale.train.normalization import Normalization
    from matscale.train.validation import evaluate

    model, config, ckpt, dataset, indices = _setup(run_dir, split, which, data, frac, device, limit)
    if "loss_units" in ckpt:
        scales = LossScales.from_dict(ckpt["loss_units"])
    else:  # checkpoints written before loss units were stored
        scales = Normalization.from_dict(ckpt["normalization"]).loss_scales()
    meter = evaluate(model, dataset, LossWeights.from_config(config), scales, indices=indices,
                     batch_size=batch_size, device=device, reduce=False)
    out = {"run_id": Path(run_dir).name, "checkpoint": which, "epoch": ckpt.get("epoch"), "split": split,
           "n_structures": meter.n_structures, "n_atoms": meter.n_atoms, **meter.result(split)}
    if equivariance:
        out.update(_equivariance(model, dataset, indices))
    return out


def _equivariance(model, dataset, indices, n: int = 32) -> dict:
    try:
        from matscale.models.symmetry import equivariance_error
    except ImportError:
        return {}
    atoms = [dataset[int(i)] for i in indices[:n]]
    err = equivariance_error(model, atoms, n_rotations=2, seed=0)
    return {f"equivariance_{k}": v for k, v in err.items() if k.endswith(("_rel", "_abs"))}


def measure_equivariance(run_dir: str | Path, n_structures: int = 32, n_rotations: int = 2) -> dict:
    """Relative and absolute rotation errors (energy, forces, stress) of the best checkpoint
    on the first `n_structures` validation structures, `n_rotations` random rotations each."""
    import torch

    from matscale.models.symmetry import equivariance_error
    from matscale.train.checkpoint import load_model
    from matscale.train.data import open_eval_split

    model, config, _ = load_model(run_dir, "best", "cpu")
    ds = open_eval_split(config, "val")
    atoms = [ds[i] for i in range(min(n_structures, len(ds)))]
    with torch.random.fork_rng():
        err = equivariance_error(model, atoms, n_rotations=n_rotations, seed=0)
    return {"checkpoint": "best", "n_structures_requested": n_structures, **err}


def store_equivariance(run_dir: str | Path, n_structures: int = 32, n_rotations: int = 2) -> str:
    """Measure and store `equivariance.json` unless stored already: 'cached', 'measured', or
    'unavailable' (no stored measurement and no checkpoints/best.pt to measure)."""
    from matscale.runs import EQUIVARIANCE_FILE, atomic_write_json, read_equivariance

    if read_equivariance(run_dir, n_structures, n_rotations) is not None:
        return "cached"
    if not (Path(run_dir) / "checkpoints" / "best.pt").is_file():
        return "unavailable"
    atomic_write_json(Path(run_dir) / EQUIVARIANCE_FILE, measure_equivariance(run_dir, n_structures, n_rotations))
    return "measured"


def predictions(run_dir: str | Path, split: str = "val", which: str = "best", data: str | None = None,
                frac: float | None = None, device: str = "cpu", batch_size: int = 32,
                limit: int | None = None) -> dict[str, np.ndarray]:
    """Parity arrays (true/pred energy per atom, forces, stress) of a run on `split`."""
    from matscale.train.validation import parity

    model, _, _, dataset, indices = _setup(run_dir, split, which, data, frac, device, limit)
    return parity(model, dataset, indices=indices, batch_size=batch_size, device=device)


def format_report(m: dict) -> str:
    s = m["split"]
    lines = [f"{m['run_id']} ({m['checkpoint']} checkpoint, epoch {m['epoch']}) on {m['n_structures']} "
             f"{s} structures / {m['n_atoms']} atoms",
             f"  loss                  {m[f'{s}_loss']:.5g}",
             f"  energy per atom MAE   {1e3 * m[f'{s}_energy_mae_eV_atom']:.4g} meV/atom",
             f"  force component MAE   {1e3 * m[f'{s}_force_mae_eV_A']:.4g} meV/Å",
             f"  force L2MAE           {1e3 * m[f'{s}_force_l2mae_eV_A']:.4g} meV/Å",
             f"  stress component MAE  {1e3 * m[f'{s}_stress_mae_eV_A3']:.4g} meV/Å³",
             f"  stress iso MAE        {1e3 * m[f'{s}_stress_iso_mae_eV_A3']:.4g} meV/Å³",
             f"  stress aniso MAE      {1e3 * m[f'{s}_stress_aniso_mae_eV_A3']:.4g} meV/Å³"]
    if f"{s}_n_stress" in m:  # some labels missing: each MAE is over the structures carrying its label
        lines.append(f"  labelled              energy {m[f'{s}_n_energy']}/{m['n_structures']} structures, forces "
                     f"{m[f'{s}_n_forces']}/{m['n_atoms']} atoms, stress {m[f'{s}_n_stress']}/{m['n_structures']} structures")
    if "equivariance_forces_rel" in m:
        lines.append(f"  equivariance error    energy {m['equivariance_energy_rel']:.3g}, forces "
                     f"{m['equivariance_forces_rel']:.3g}, stress {m['equivariance_stress_rel']:.3g} (relative)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m matscale evaluate",
                                description="Evaluate a run's checkpoint: MAEs in meV units.")
    p.add_argument("run_dir", help="run folder (runs/<run_id>) or a run id under --run-root")
    p.add_argument("--run-root", default="runs", help="where run ids are looked up (default: runs)")
    p.add_argument("--split", choices=("val", "train"), default="val", help="structures to evaluate (default: val)")
    p.add_argument("--checkpoint", default="best", help="best, last or a .pt path (default: best)")
    p.add_argument("--data", default=None, help="dataset root (default: the run's)")
    p.add_argument("--frac", type=float, default=None, help="fraction of the split (default: the run's)")
    p.add_argument("--limit", type=int, default=None, help="evaluate at most this many structures")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--no-equivariance", action="store_true", help="skip the rotation-equivariance error")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON to stdout instead of the report")
    p.add_argument("--output", default=None, metavar="FILE", help="also write the metrics as JSON to FILE")
    args = p.parse_args(argv)
    from matscale.config import resolve_device
    from matscale.runs import run_dir

    path = run_dir(args.run_dir, args.run_root)
    m = evaluate_run(path, split=args.split, which=args.checkpoint, data=args.data, frac=args.frac,
                     device=resolve_device(args.device), limit=args.limit, equivariance=not args.no_equivariance)
    payload = json.dumps(m, indent=2)
    if args.output:
        from matscale.runs import atomic_write_bytes

        atomic_write_bytes(Path(args.output), (payload + "\n").encode())
    print(payload if args.json else format_report(m))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
