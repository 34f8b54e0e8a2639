# ==== training engine (matscale/train, config, runs, calculator) ====================================
import pytest as _pytest_train


def _emt_structures(n: int, seed: int = 0, elements=("Cu", "Al", "Ni", "Ag")):
    """n small labelled EMT structures (1–8 atoms, rattled and strained fcc alloys), deterministic."""
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = bulk(elements[i % len(elements)], "fcc", cubic=bool(rng.integers(2))).repeat((int(rng.integers(1, 3)), 1, 1))
        symbols = [elements[int(rng.integers(len(elements)))] if rng.random() < 0.3 else s
                   for s in a.get_chemical_symbols()]
        a.set_chemical_symbols(symbols)
        a.set_cell(a.cell[:] @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
        a.positions += 0.1 * rng.standard_normal(a.positions.shape)
        a.calc = EMT()
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        a.info.update(sid=f"emt{seed}_{i}", parent_id=f"emt{seed}_{i}", subset="rattled-300")
        out.append(a)
    return out


@_pytest_train.fixture(scope="session")
def emt_structures():
    """48 labelled EMT structures for training-engine tests (read-only: copy before changing)."""
    return _emt_structures(48, seed=0)


@_pytest_train.fixture(scope="session")
def emt_val_structures():
    return _emt_structures(16, seed=1)
# ==== end training engine ===========================================================================


# ==== first models (fcn, transformer, baselines) ====================================================
import pytest as _pytest_models


@_pytest_models.fixture(scope="session")
def mixed_emt_structures():
    """Six rattled, strained EMT alloys of 1–32 atoms (mixed sizes in one batch); read-only."""
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(0)
    out = []
    for element, rep, cubic in [("Cu", (1, 1, 1), False), ("Al", (2, 1, 1), True), ("Ni", (1, 1, 1), True),
                                ("Ag", (3, 1, 1), False), ("Au", (2, 2, 2), True), ("Pd", (2, 1, 1), False)]:
        a = bulk(element, "fcc", cubic=cubic).repeat(rep)
        a.set_chemical_symbols([s if rng.random() < 0.7 else "Cu" for s in a.get_chemical_symbols()])
        a.set_cell(a.cell[:] @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
        a.positions += 0.05 * rng.standard_normal(a.positions.shape)
        a.calc = EMT()
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        out.append(a)
    return out
# ==== end first models ==============================================================================


# ==== graph models (schnet, fairchem peers, graph, symmetry) ========================================
import pytest as _pytest_graph


def _gm_emt_structures():
    """Five rattled, strained, labelled EMT alloys of 1–8 atoms (incl. a 1-atom primitive cell)."""
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(7)
    out = []
    specs = [("Cu", 3.61, True, 2), ("Al", 4.05, False, 2), ("Ni", 3.52, True, 1), ("Ag", 4.09, False, 1),
             ("Cu", 3.61, False, 1)]
    for k, (element, a0, cubic, rep) in enumerate(specs):
        atoms = bulk(element, "fcc", a=a0, cubic=cubic).repeat((rep, 1, 1))
        if len(atoms) > 1:
            symbols = atoms.get_chemical_symbols()
            symbols[0] = "Au" if element != "Au" else "Cu"
            atoms.set_chemical_symbols(symbols)
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + 0.03 * rng.standard_normal((3, 3))), scale_atoms=True)
        atoms.positions += 0.08 * rng.standard_normal(atoms.positions.shape)
        atoms.calc = EMT()
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
        atoms.info["sid"] = f"gm{k}"
        out.append(atoms)
    return out


@_pytest_graph.fixture(scope="session")
def gm_structures():
    """Labelled EMT structures for graph-model tests (read-only: copy before changing)."""
    return _gm_emt_structures()
def _gm_overfit(model, structures, steps: int = 150, lr: float = 3e-3, seed: int = 0):
    """Plain-Adam overfit of energy/atom, forces and stress (normalised MSE); returns the loss curve."""
    import numpy as np
    import torch

    from matscale.data.batch import collate

    torch.manual_seed(seed)
    batch = collate(structures)
    e_atom = (batch.energy / batch.natoms).mean()
    ref = torch.full((119,), float(e_atom))
    resid = batch.energy - e_atom * batch.natoms
    model.set_normalization(ref, float(resid.abs().mean().clamp_min(1e-3)), float(batch.forces.std()),
                            float(batch.stress.std()))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        out = model(batch)
        loss = (((out["energy"] - batch.energy) / batch.natoms / model.energy_scale) ** 2).mean() \
            + ((out["forces"] - batch.forces) / model.force_scale).pow(2).mean() \
            + ((out["stress"] - batch.stress) / model.stress_scale).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return np.array(losses)


@_pytest_graph.fixture(scope="session")
def gm_overfit():
    return _gm_overfit


# ==== end graph models ==============================================================================


# --- data fixtures (data helper) --------------------------------------------------------------------
import pytest as _pytest_data

TINY_STRUCTURES = 300  # training structures of the tiny synthetic set (val adds ≈260: ≥1 parent per subset)


@_pytest_data.fixture(scope="session")
def tiny_data_root(tmp_path_factory):
    """A tiny synthetic OMat24-layout dataset (seed 0, ≈320 train + ≈260 val rows, all 11 subsets
    in both splits), generated once per test session (shared by pytest-xdist workers through a
    lock). Read-only: copy it before changing anything."""
    import os

    from matscale.data.default import ensure_dataset

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # one directory per session, shared by its workers
    return ensure_dataset(base / "matscale-tiny-data", TINY_STRUCTURES, seed=0, workers=2, progress=False)
# --- end data fixtures (data helper) ----------------------------------------------------------------


# ==== study pages (matscale/study.py, book study notebooks) =========================================
import pytest as _pytest_study

# A synthetic study: losses follow L = E + A N^-alpha + B D^-beta (0.3 % noise), so fits must
# recover alpha and beta. Run folders are written with matscale.runs.RunDir, the training loop's
# writer, under the run ids `python -m matscale train` gives the planned settings.
STUDY_TRUE = {"transformer": dict(E=20.0, A=300.0, alpha=0.35, B=150.0, beta=0.45),
              "schnet": dict(E=12.0, A=500.0, alpha=0.45, B=100.0, beta=0.35)}
STUDY_SIZES = {"transformer": ["xs", "s", "m", "l", "xl"], "schnet": ["xs", "s", "m", "l", "xl"]}
STUDY_FRACS = [0.01, 0.02, 0.05, 0.1, 0.2]
STUDY_N_TRAIN = 20000  # structures of the synthetic training split (D = frac * N_TRAIN)
STUDY_FLOPS_PER_PARAM_SAMPLE = 300.0
STUDY_ROWS = 4  # validations per run
STUDY_SKIP = {("schnet", "xl", 0.2, 0)}  # a planned run that never ran
STUDY_FAIL = {("transformer", "xs", 0.01, 1)}  # a planned run that failed


def synthetic_study_spec() -> dict:
    """Cross design: data series at the smallest size (2 seeds), parameter series at frac 0.2."""
    base = {"epochs": 3, "batch_size": 16, "val_frac": 0.1, "lr": 0.001}
    grid = {"arch": {arch: {"size": [sizes[0]], "frac": STUDY_FRACS, "seed": [0, 1]}
                     for arch, sizes in STUDY_SIZES.items()}}
    points = [{"arch": arch, "size": size, "frac": STUDY_FRACS[-1], "seed": 0}
              for arch, sizes in STUDY_SIZES.items() for size in sizes[1:]]
    points.append({"arch": "linear", "frac": STUDY_FRACS[-1]})  # a closed-form baseline
    return {"name": "synthetic", "base": base, "grid": grid, "points": points}


def study_fake_params(arch: str, size: str) -> int:
    return int(3000 * 6 ** STUDY_SIZES[arch].index(size))


def study_true_loss(arch: str, N, D):
    t = STUDY_TRUE[arch]
    return t["E"] + t["A"] * N ** -t["alpha"] + t["B"] * D ** -t["beta"]


def write_study_run(root, config, loss: float, N: int, D: int, status: str = "completed", rows: int = STUDY_ROWS):
    """A run folder in the training loop's format (config.json, metrics.csv, summary.json)."""
    from matscale.runs import RunDir

    config = config.validate(check_device=False)
    run = RunDir(root / config.run_id())
    run.write_config(config.to_dict())
    samples = config.epochs * D
    metrics = []
    for i in range(1, rows + 1):
        seen = samples * i // rows
        val = loss * (1 + 0.6 * (1 - i / rows) ** 2)
        row = {"epoch": i, "step": seen // config.batch_size, "samples_seen": seen, "atoms_seen": 18 * seen,
               "flops": STUDY_FLOPS_PER_PARAM_SAMPLE * N * seen, "wall_s": 0.01 * i, "lr": config.lr}
        for split, scale in (("train", 0.9), ("val", 1.0)):
            v = scale * val
            row.update({f"{split}_loss": v, f"{split}_loss_energy": 0.1 * v, f"{split}_loss_force": 0.6 * v,
                        f"{split}_loss_stress_iso": 0.15 * v, f"{split}_loss_stress_aniso": 0.15 * v,
                        f"{split}_energy_mae_eV_atom": 1e-3 * v, f"{split}_force_l2mae_eV_A": 1e-2 * v,
                        f"{split}_stress_mae_eV_A3": 1e-4 * v})
        metrics.append(row)
    run.write_metrics(metrics)
    from matscale import models
    from matscale.run_summary import RunSummary

    trainable = models.spec(config.arch).trainable
    summary = RunSummary(
        status=status, arch=config.arch, size=config.size, error="boom" if status == "failed" else None,
        n_train=D, n_val=200, params_total=N + 1000 * trainable, params_non_embedding=N,
        trainable=trainable, best_val_loss=loss, final_val_loss=loss, flops=metrics[-1]["flops"],
        samples_seen=samples, steps=metrics[-1]["step"], epochs_completed=config.epochs, wall_s=1.0)
    summary.set_best_metrics({k: v for k, v in metrics[-1].items() if k.startswith("val_")})
    run.write_summary(summary.to_dict())
    return run.path


def build_synthetic_study(folder, spec=None, skip=STUDY_SKIP, fail=STUDY_FAIL):
    """Write `spec` as a sweep file and its planned runs (all but `skip`) under folder/runs."""
    import json
    import zlib

    import numpy as np
    import yaml

    from matscale.sweep import expand

    spec = spec or synthetic_study_spec()
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    root = folder / "runs"
    for config in expand(path):
        key = (config.arch, config.size, config.frac, config.seed)
        if key in skip:
            continue
        D = int(round(config.frac * STUDY_N_TRAIN))
        if config.arch == "linear":
            write_study_run(root, config, 60.0, 0, D, rows=1)
            continue
        N = study_fake_params(config.arch, config.size)
        run_id = config.validate(check_device=False).run_id()
        noise = float(np.exp(0.003 * np.random.default_rng(zlib.crc32(run_id.encode())).standard_normal()))
        run = write_study_run(root, config, study_true_loss(config.arch, N, D) * noise, N, D,
                              status="failed" if key in fail else "completed")
        if config.arch == "transformer":  # a stored equivariance measurement, as a committed study has
            err = 3.0 * (N / 1e4) ** -0.1 * (D / 1e3) ** -0.2
            (run / "equivariance.json").write_text(json.dumps({
                "checkpoint": "best", "n_structures_requested": 32, "n_rotations": 2, "n_structures": 32,
                "energy_rel": 0.01 * err, "forces_rel": err, "stress_rel": 0.5 * err,
                "energy_abs": 1e-3 * err, "forces_abs": err, "stress_abs": 1e-3 * err}))
    return path


@_pytest_study.fixture(scope="session")
def synthetic_study(tmp_path_factory):
    """(sweep file, runs root) of the synthetic study, plus a stray run folder that is not part of it."""
    from matscale.config import TrainConfig

    folder = tmp_path_factory.mktemp("synthetic-study")
    path = build_synthetic_study(folder)
    write_study_run(folder / "runs", TrainConfig(arch="transformer", size="s", frac=0.5, epochs=1), 1.0, 10, 10)
    return path, folder / "runs"
# ==== end study pages ===============================================================================


# ==== issue 12 ====================================================================================
# fixtures of the book tests (test_book_render, test_book_real); their helpers are in helpers.py
@_pytest_study.fixture(scope="session")
def shared_tmp(tmp_path_factory):
    """A temp folder of this test session, shared by its xdist workers."""
    import os

    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@_pytest_study.fixture(scope="session")
def chromium() -> str:
    """Path of a headless-capable Chromium (a prerequisite: `make browser` installs it)."""
    from helpers import find_chromium

    path = find_chromium()
    if path is None:
        _pytest_study.skip("Chromium is not installed: run `make browser` (apt-get install -y chromium), "
                           "as `make test` does")
    return path
# ==== end issue 12 ================================================================================
