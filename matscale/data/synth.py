"""Synthetic OMat24: all 11 subsets in both splits, labelled by an ASE calculator (EMT default).

The plan gives every subset its OMat24 share of the rows (released val counts) and turns it
into jobs, one per parent. Parents come in families, as Alexandria structures seed several
OMat24 subsets: a rattled parent serves rattled-1000 and, for the first parents of the family,
also rattled-500 and rattled-300 (so each subset keeps its share); the `-subsampled` subsets
draw on a separate family of parents; one aimd parent runs trajectories at 1000 K (NPT, NVT)
and, for the first ones, 3000 K; rattled-relax has its own parents. A job relaxes its parent
once and samples every subset it serves; a rattled subset gets PICKS structures per parent,
an aimd subset one whole trajectory, rattled-relax one whole relaxation. Every parent lives
in one split only (val gets ≈10 % as many parents as train, at least one per subset), so
no parent or trajectory can leak across splits. Each job is seeded from (seed, parent index,
subset) and builds its own fresh calculator, and rows are written in plan order, so the
output depends only on the seed and the target size, not on the number of worker processes.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from matscale.data import recipes
from matscale.data.calculators import CalculatorSpec, get_calculator
from matscale.data.subsets import SPLITS, SUBSETS, VAL_COUNTS, spec
from matscale.errors import DataError

FORMAT = "matscale-synth-v1"
VAL_SHARE = 0.10  # val parents per train parent
RELAX_YIELD = 30  # mean frames per relaxation (measured on EMT parents), for planning only
# env for worker processes: single-threaded BLAS keeps results identical for any worker count
_WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Job:
    parent_index: int
    split: str
    subsets: tuple[str, ...]  # the subsets this parent is sampled for


# parent families: subsets that share parents (each subset belongs to exactly one family)
FAMILIES: tuple[tuple[str, ...], ...] = (
    ("rattled-1000", "rattled-500", "rattled-300"),
    ("rattled-1000-subsampled", "rattled-500-subsampled", "rattled-300-subsampled"),
    ("aimd-from-PBE-1000-npt", "aimd-from-PBE-1000-nvt", "aimd-from-PBE-3000-npt", "aimd-from-PBE-3000-nvt"),
    ("rattled-relax",),
)


@dataclass
class SynthReport:
    root: str
    seed: int
    calculator: str
    structures_target: int
    counts: dict = field(default_factory=dict)  # split -> subset -> rows
    parents: dict = field(default_factory=dict)  # split -> number of parents
    elapsed_s: float = 0.0
    workers: int = 1

    def total(self, split: str) -> int:
        return int(sum(self.counts.get(split, {}).values()))

    @property
    def structures_per_s(self) -> float:
        return (self.total("train") + self.total("val")) / max(self.elapsed_s, 1e-9)


def expected_yield(subset: str) -> float:
    kind = spec(subset).kind
    return {"rattled": recipes.PICKS, "aimd": recipes.FRAMES, "relax": RELAX_YIELD}[kind]


def family_of(subset: str) -> int:
    return next(i for i, fam in enumerate(FAMILIES) if subset in fam)


def parents_per_subset(structures: int, val_share: float = VAL_SHARE) -> dict[str, dict[str, int]]:
    """split -> subset -> number of parents sampled for it (≥ 1 everywhere)."""
    if int(structures) < 1:
        raise DataError(f"structures must be a positive number of training structures, got {structures}")
    total = sum(VAL_COUNTS.values())
    train = {s: max(1, round(structures * VAL_COUNTS[s] / total / expected_yield(s))) for s in SUBSETS}
    return {"train": train, "val": {s: max(1, round(val_share * n)) for s, n in train.items()}}


def plan(structures: int, val_share: float = VAL_SHARE) -> list[Job]:
    """Jobs for ≈`structures` training rows (+ ≈val_share as many in val), in writing order."""
    counts = parents_per_subset(structures, val_share)
    jobs, index = [], 0
    for split in SPLITS:
        for family in FAMILIES:
            n = counts[split]
            for k in range(max(n[s] for s in family)):
                served = tuple(s for s in family if k < n[s])
                if spec(family[0]).kind == "aimd":
                    # one job per trajectory (same parent, relaxed in each): trajectories are
                    # the expensive part, and separate jobs spread them over the workers
                    jobs += [Job(index, split, (s,)) for s in served]
                else:
                    jobs.append(Job(index, split, served))
                index += 1
    return jobs


_STATE: dict = {}


def _init_worker(calc: CalculatorSpec, seed: int, val_elements: tuple[str, ...] | None = None) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    _STATE.update(calc=calc, seed=int(seed), val_elements=val_elements)


def val_elements(calc: CalculatorSpec, jobs: list[Job], seed: int) -> tuple[str, ...] | None:
    """The elements validation parents may use: for the multi-chemistry (teacher) parents, those
    drawn for the training parents, so that the validation split never asks for an element the
    training split lacks (with ~60 parents over ~70 elements it otherwise would: OMat24's millions
    of parents make it automatic). None (every element) for the other builders."""
    from matscale.data import prototypes

    if calc.parents is not prototypes.make_parent:
        return None
    train = {j.parent_index: _min_atoms(j) for j in jobs if j.split == "train"}
    return prototypes.drawn_elements(seed, train, calc.elements)


def _min_atoms(job: Job) -> int:
    return 2 if any(spec(s).kind == "aimd" for s in job.subsets) else 1


def run_job(job: Job) -> tuple[Job, list[recipes.Frame]]:
    """Build and relax the job's parent, then sample each of its subsets (deterministic)."""
    from matscale.data.parents import make_parent

    calc_spec: CalculatorSpec = _STATE["calc"]
    seed = _STATE["seed"]
    calc = calc_spec.factory()  # fresh per job: results never depend on an earlier job's state
    builder = calc_spec.parents or make_parent
    elements = calc_spec.elements
    if job.split == "val" and _STATE.get("val_elements"):
        elements = _STATE["val_elements"]
    parent = builder(seed, job.parent_index, calc, elements, min_atoms=_min_atoms(job))
    frames: list[recipes.Frame] = []
    for subset in job.subsets:
        sp = spec(subset)
        rng = np.random.default_rng([seed, job.parent_index, 1 + SUBSETS.index(subset)])
        if sp.kind == "rattled":
            frames += recipes.rattled(parent, sp.temperature_K, subset, calc, rng)
        elif sp.kind == "aimd":
            frames += recipes.aimd(parent, sp.temperature_K, sp.ensemble, subset, calc, rng)
        else:
            frames += recipes.relax_trajectory(parent, subset, calc, rng)
    return job, frames


def run_jobs_here(jobs: list[Job], calculator: str | CalculatorSpec = "emt", seed: int = 0) -> list:
    """[(job, frames)] of `jobs` computed in this process (what a worker does; for benchmarks
    and debugging: no pool, no spawn)."""
    calc = get_calculator(calculator) if isinstance(calculator, str) else calculator
    _init_worker(calc, seed, val_elements(calc, jobs, seed))
    return [run_job(job) for job in jobs]


def _iter_results(jobs: list[Job], calc: CalculatorSpec, seed: int, workers: int):
    """Results in plan order, computed in `workers` spawned single-threaded processes."""
    import multiprocessing as mp

    import types

    saved = {k: os.environ.get(k) for k in _WORKER_ENV}
    os.environ.update(_WORKER_ENV)
    # Spawned workers normally re-import the caller's __main__ (a script without a main guard,
    # `python -m matscale`, a notebook); hand them an empty one instead. Workers start here,
    # in Pool(), and are never restarted (no maxtasksperchild), so the swap covers them all.
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker,
                                            initargs=(calc, seed, val_elements(calc, jobs, seed)))
    finally:
        sys.modules["__main__"] = main
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        yield from pool.imap(run_job, jobs, chunksize=1)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def synthesize(
    out: str | os.PathLike,
    structures: int,
    seed: int = 0,
    calculator: str = "emt",
    workers: int | None = None,
    progress: bool = True,
    shard_rows: int | None = None,
) -> SynthReport:
    """Generate an OMat24-layout dataset at `out` (which must not exist or be empty).

    structures: target number of TRAINING rows; the validation split comes on top (≈10 % as
    many parents, ≈10-15 % as many rows: 2000 gives ≈2,290 rows in all). The counts actually
    written deviate slightly (whole trajectories, filtered frames) and are in the returned
    report and in `<out>/synth.json`. The directory appears atomically: it is built in a temporary
    sibling and renamed at the end, so an interrupted run leaves no half-written dataset.
    """
    from tqdm.auto import tqdm

    from matscale.data.writer import DEFAULT_SHARD_ROWS, SubsetWriter

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"output directory {out} already exists and is not empty; choose a new --out or delete it")
    calc = get_calculator(calculator)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise DataError(f"workers must be >= 1, got {workers}")
    jobs = plan(structures)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    report = SynthReport(str(out), int(seed), calculator, int(structures), workers=workers)
    t0 = time.perf_counter()
    # the bar counts generation jobs (known exactly in advance; a job's frame count is not: whole
    # trajectories, filtered frames) and shows the structures written so far next to it
    bar = tqdm(total=len(jobs), unit="job", desc=f"synthesizing {out.name}", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    written = 0
    try:
        writers: dict[tuple[str, str], SubsetWriter] = {}
        parents: dict[str, set] = {s: set() for s in SPLITS}

        def close_all():
            for (split, subset), writer in writers.items():
                report.counts.setdefault(split, {})[subset] = writer.close()
            writers.clear()

        group = None
        for job, frames in _iter_results(jobs, calc, seed, workers):
            if (job.split, family_of(job.subsets[0])) != group:
                close_all()  # jobs come grouped by split and family: finish the previous group
                group = (job.split, family_of(job.subsets[0]))
            for subset in job.subsets:
                if (job.split, subset) not in writers:
                    writers[(job.split, subset)] = SubsetWriter(tmp / job.split / subset, subset,
                                                                shard_rows or DEFAULT_SHARD_ROWS)
            for frame in frames:
                writers[(job.split, frame.subset)].write(frame)
            parents[job.split].add(job.parent_index)
            written += len(frames)
            bar.set_postfix(structures=written, refresh=False)
            bar.update(1)
        close_all()
        report.counts = {sp: {s: report.counts[sp][s] for s in SUBSETS} for sp in SPLITS}
        bar.close()
        report.parents = {k: len(v) for k, v in parents.items()}
        report.elapsed_s = time.perf_counter() - t0
        info = asdict(report)
        info.update(format=FORMAT, recipe=recipe_constants(calculator), structures_per_s=report.structures_per_s)
        if calc.parents is not None:
            from matscale.data import teacher

            if calculator in teacher.PACKAGES:
                info.update(teacher=teacher.versions(calculator))
        info.pop("root")
        (tmp / "synth.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def recipe_constants(calculator: str | None = None) -> dict:
    """The sampling constants, recorded in synth.json for provenance; a calculator with its own
    parent builder (the teachers) adds that builder's constants and its guard's."""
    names = ["CANDIDATES", "PICKS", "STRAIN_SIGMA_1000K", "TIMESTEP_FS", "FRAMES", "NVT_TDAMP_FS", "NPT_TTAU_FS",
             "RELAX_RATTLE_A", "RELAX_STRAIN", "RELAX_FMAX", "RELAX_MAX_STEPS", "MAX_FORCE", "MAX_STRESS"]
    out = {n: getattr(recipes, n) for n in names} | {"VAL_SHARE": VAL_SHARE}
    from matscale.data.calculators import CALCULATORS

    if calculator in CALCULATORS and CALCULATORS[calculator].parents is not None:
        from matscale.data import prototypes, teacher

        out["PARENTS"] = prototypes.constants() | {"VAL_ELEMENTS": "train-parents"}
        out["GUARD"] = {"MIN_DISTANCE": teacher.MIN_DISTANCE, "ENERGY_PER_ATOM": list(teacher.ENERGY_PER_ATOM),
                        "BLOWUP_FORCE": teacher.BLOWUP_FORCE}
    return out
