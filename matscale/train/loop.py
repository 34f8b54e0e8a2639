"""The training loop: one `TrainConfig` in, one run folder out.

    train(config, resume=False, force=False, quiet=None) -> RunResult

Steps: resolve the run folder (a finished run is a no-op unless `force`); open the data;
fit the normalisation on the training subset; build the model (seeded); closed-form
baselines (`trainable=False`) are fitted with `model.fit(...)` and validated once;
everything else trains with AdamW, warm-up + cosine schedule over the true number of
optimiser steps, gradient clipping, optional bf16/fp16 mixed precision and rotation
augmentation, `max_steps` steps or `epochs` passes, validation every `val_every` epochs or
`val_every_steps` steps, early stopping after `patience`
validations without improvement, FLOPs accumulated per step (`flops.py`), and checkpoints:
last.pt after every validation (and every CHECKPOINT_SECONDS at an epoch end), best.pt on
every improvement; a resumed run restarts from last.pt's epoch boundary. Under torchrun it trains with DDP and
rank 0 writes. Any exception marks the run failed (summary.json: status, error) and re-raises.

The loop's state between steps is one `TrainState` (counters, best validation, the train
metrics since the last validation); `summary.json` is one `RunSummary` (matscale/run_summary.py).
Hook for tests and benchmarks: set the module attribute `after_step` to a callable; it is
called with the step number after every optimiser step (tests raise there or SIGKILL the
process to check that `resume=True` continues exactly; bench/bench_study.py times steps).
"""
from __future__ import annotations

import shutil
import sys
import time
from datetime import datetime, timezone
from functools import partial
from typing import Any, Callable

import numpy as np
import torch

from matscale import lifeline, models
from matscale.config import TrainConfig
from matscale.data.batch import collate
from matscale.errors import ConfigError, MatscaleError
from matscale.fserrors import ensure_dir
from matscale.locks import run_lock
from matscale.models import graph_cache
from matscale.run_summary import RunSummary
from matscale.runs import FINISHED, RunDir, atomic_write_bytes, remove_orphan_temps, resolve_root
from matscale.train import checkpoint, distributed, flops, guards
from matscale.train.data import loss_unit_structures, natoms_of, open_datasets
from matscale.train.logs import TENSORBOARD_DIR, RunLog
from matscale.train.diagnose import failure_message, nonfinite_loss_error
from matscale.train.loss import LossMeter, LossScales, LossWeights, loss
from matscale.train.normalization import Normalization, fit_normalization
from matscale.train.schedule import make_scheduler
from matscale.train.state import RunResult, TrainState, param_groups, rotation_fns, seed_everything
from matscale.train.validation import autocast, evaluate, parity

VIS_STRUCTURES = 64
CHECKPOINT_SECONDS = 600.0  # between validations, last.pt is still refreshed this often (s)
after_step: Callable[[int], None] | None = None  # hook (tests, benchmarks), called after each optimiser step


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def train(config: TrainConfig, *, resume: bool = False, force: bool = False, quiet: bool | None = None,
          require_weights: bool = False, train_set=None, val_set=None) -> RunResult:
    """Train (or fit) the model `config` describes; see the module docstring.

    resume: continue an unfinished run from its last checkpoint (a fresh start if it has none).
    force: start over whatever exists. quiet: no progress bars (default: when stderr is not a
    terminal). require_weights: re-train a finished run whose checkpoints/best.pt is missing
    (run folders are committed without checkpoints). train_set / val_set: optional in-memory
    datasets (indexable sequences of labelled ase.Atoms) replacing `config.data`; the run id
    then hashes their contents (`data_fingerprint` = memory-<hex>), so read it from the result.
    """
    config = resolved_config(config, train_set, val_set)
    lifeline.die_with_parent()  # run for a sweep (e.g. in a papermill kernel): do not outlive it
    info, device = distributed.setup(config.device)
    started_group = info.enabled
    try:
        return _Trainer(config, info, device, resume=resume, force=force, quiet=quiet,
                        require_weights=require_weights, train_set=train_set, val_set=val_set).run()
    finally:
        if started_group:
            distributed.teardown()


def resolved_config(config: TrainConfig, train_set=None, val_set=None) -> TrainConfig:
    """`config.validate()`, with the fingerprint of in-memory datasets when some are given
    (memory-<hex> of their contents: the run id names the data it trained on)."""
    config = config.validate()
    if train_set is not None or val_set is not None:
        from matscale.data.fingerprint import memory_fingerprint

        disk = config.data_fingerprint
        config = config.replace(data_fingerprint=memory_fingerprint(
            disk if train_set is None else train_set, disk if val_set is None else val_set))
    return config


class _Trainer:
    def __init__(self, config: TrainConfig, info: distributed.DistInfo, device: str, *, resume: bool,
                 force: bool, quiet: bool | None, require_weights: bool, train_set, val_set) -> None:
        self.config, self.info, self.device = config, info, device
        self.resume, self.force, self.require_weights = resume, force, require_weights
        self.quiet = (not sys.stderr.isatty()) if quiet is None else quiet
        self.quiet = self.quiet or not info.is_main
        self.train_set, self.val_set = train_set, val_set
        self.run_id = config.run_id()
        self.rundir = RunDir(resolve_root(config.run_root) / self.run_id)
        self.spec = models.spec(config.arch)
        self.weights = LossWeights.from_config(config)
        self.summary = RunSummary()
        self.rows: list[dict[str, Any]] = []
        self.total_steps = self.n_epochs = 0  # set by _setup_training (closed-form baselines take none)
        self.log = RunLog.disabled()  # per-validation log lines / TensorBoard (train/logs.py)

    # -- run folder -----------------------------------------------------------------------------
    def _prepare_folder(self) -> dict | None:
        """Decide fresh / resume / skip; returns the checkpoint to resume from, if any."""
        summary = self.rundir.read_summary() if self.rundir.summary_path.exists() else None
        status = (summary or {}).get("status")
        weights_missing = self.require_weights and not (self.rundir.checkpoints / "best.pt").exists()
        if status in FINISHED and weights_missing:
            self.force = True  # results without weights (checkpoints are not committed): train again
        if status in FINISHED and not self.force:
            return {"skip": summary}
        last = self.rundir.checkpoints / "last.pt"
        ckpt = None
        if self.force:
            pass
        elif self.resume and last.exists():
            ckpt = checkpoint.load(last, run_id=self.run_id)
        elif self.rundir.exists() and not self.resume:
            raise ConfigError(f"run {self.run_id} already exists in {self.rundir.path.parent} with status "
                              f"{status or 'unknown'}; pass --resume to continue it from its last checkpoint "
                              "or --force to start it over")
        distributed.barrier()
        if self.info.is_main and ckpt is None and self.rundir.path.exists():
            shutil.rmtree(self.rundir.path)
        distributed.barrier()
        return ckpt

    # -- main -------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """One lock per run folder (rank 0 holds it): a second train/resume/sweep/evaluate is refused."""
        root = self.rundir.path.parent
        if not self.info.is_main:
            return self._run_locked()
        ensure_dir(root, "run root")
        with run_lock(root, self.run_id):
            return self._run_locked()

    def _run_locked(self) -> RunResult:
        prepared = self._prepare_folder()
        if prepared is not None and "skip" in prepared:
            s = prepared["skip"]
            return RunResult(self.run_id, self.rundir.path, s["status"], s, skipped=True)
        ckpt = prepared
        self.t0 = time.perf_counter()
        self.wall_offset = float(ckpt["wall_s"]) if ckpt else 0.0
        self.summary = RunSummary(status="running", arch=self.config.arch, size=self.config.size,
                                  started_at=_now(), world_size=self.info.world_size, device=self.device,
                                  resumed=ckpt is not None)
        if self.info.is_main:
            ensure_dir(self.rundir.path, "run folder")
            remove_orphan_temps(self.rundir.path)  # left by a process killed mid-write
            self.rundir.write_config(self.config.to_dict(), {"world_size": self.info.world_size})
            self._write_summary()
        try:
            self._run(ckpt)
        except BaseException as exc:
            if self.info.is_main:
                self.summary.update(status="failed", error=failure_message(exc), finished_at=_now(),
                                    wall_s=self._wall())
                try:
                    self._write_summary()
                except OSError:  # e.g. the disk is still full: the lock shows the run as interrupted
                    pass
            raise
        return RunResult(self.run_id, self.rundir.path, self.summary.status, self.summary.to_dict())

    def _wall(self) -> float:
        return self.wall_offset + time.perf_counter() - self.t0

    def _write_summary(self) -> None:
        if self.info.is_main:
            self.rundir.write_summary(self.summary.to_dict())

    def _run(self, ckpt: dict | None) -> None:
        cfg = self.config
        self.unit_source = None
        if self.train_set is not None:
            self.unit_source = [self.train_set[i] for i in range(len(self.train_set))]
        if self.train_set is None or self.val_set is None:
            tr, va = open_datasets(cfg, progress=not self.quiet)
            self.train_set = tr if self.train_set is None else self.train_set
            self.val_set = va if self.val_set is None else self.val_set
        self.natoms = natoms_of(self.train_set)
        self.val_natoms = natoms_of(self.val_set)
        self.summary.update(n_train=len(self.train_set), n_val=len(self.val_set),
                            n_train_atoms=int(self.natoms.sum()))

        seed_everything(cfg.seed)
        model = models.build(cfg.arch, cfg.size)
        total, non_emb = models.count_parameters(model)
        self.summary.update(params_total=total, params_non_embedding=non_emb, trainable=self.spec.trainable)
        if ckpt is not None:
            self.norm = Normalization.from_dict(ckpt["normalization"])
        else:
            self.norm = fit_normalization(self.train_set[i] for i in range(len(self.train_set)))
        self.norm.apply(model)
        coverage = guards.check_labels(cfg, self.norm, self.val_set)  # DataError when a weighted label is absent
        warnings = guards.split_warnings(cfg, len(self.train_set), len(self.val_set))
        guards.report(warnings, self.info.is_main)
        self.summary.update(warnings=warnings, label_coverage=coverage)
        if ckpt is not None and "loss_units" in ckpt:
            self.scales = LossScales.from_dict(ckpt["loss_units"])
        elif self.unit_source is not None:  # in-memory data: its own training structures define the units
            self.scales = fit_normalization(self.unit_source).loss_scales()
        else:
            self.scales = fit_normalization(loss_unit_structures(cfg)).loss_scales()
        self.summary.update(normalization=self.norm.to_dict(), loss_units=self.scales.to_dict())
        model.to(self.device)
        self.model = model
        # radius graphs recur every epoch unless positions are augmented (graph_cache.py)
        cache = None if cfg.rotation_augment else graph_cache.GraphCache.from_mb(cfg.graph_cache_mb)
        with graph_cache.use(cache):
            if not self.spec.trainable:
                self._fit_baseline()
            else:
                self._train(ckpt)

    # -- closed-form baselines ----------------------------------------------------------------
    def _fit_baseline(self) -> None:
        fit = getattr(self.model, "fit", None)
        if fit is None:
            raise MatscaleError(f"architecture {self.config.arch} is not trainable and has no fit(data) method")
        fit(self.train_set[i] for i in range(len(self.train_set)))
        self.model.to(self.device)
        idx = np.array_split(np.arange(len(self.train_set)), self.info.world_size)[self.info.rank]
        train = evaluate(self.model, self.train_set, self.weights, self.scales, indices=idx,
                         batch_size=max(self.config.batch_size, 1), device=self.device).result("train")
        val = self._validate()
        row = {"epoch": 0, "step": 0, "samples_seen": len(self.train_set), "atoms_seen": int(self.natoms.sum()),
               "flops": 0.0, "wall_s": self._wall(), "lr": 0.0, **train, **val}
        self.rows = [row]
        self._open_log(0, {"step": 0, "samples_seen": 0})
        self.log.validation(row)
        self.log.close()
        if self.info.is_main:
            self.rundir.write_metrics(self.rows)
            payload = self._model_payload(epoch=0, step=0, val_loss=val["val_loss"])
            checkpoint.save(self.rundir.checkpoints / "best.pt", payload)
            checkpoint.save(self.rundir.checkpoints / "last.pt", payload)
        self.summary.set_best_metrics(val)
        self.summary.update(status="completed", best_val_loss=val["val_loss"], final_val_loss=val["val_loss"],
                            final_train_loss=train["train_loss"],
                            best_epoch=0, best_step=0, flops=0.0, samples_seen=len(self.train_set),
                            steps=0, epochs_completed=0, finished_at=_now(), wall_s=self._wall())
        self._write_summary()

    # -- SGD training -------------------------------------------------------------------------
    def _train(self, ckpt: dict | None) -> None:
        cfg = self.config
        st = self._setup_training(ckpt)
        status = "completed"
        self._open_log(self.summary.total_steps or 0, {"step": st.step, "samples_seen": st.samples_seen})
        from tqdm import tqdm

        epochs_bar = tqdm(total=self.n_epochs, initial=st.epoch, desc=self.run_id, unit="epoch",
                          disable=self.quiet, dynamic_ncols=True)
        try:
            for epoch in range(st.epoch, self.n_epochs):
                self._epoch(st, epoch)
                stop = self._validate_and_save(st)
                epochs_bar.update(1)
                if self.rows and not self.quiet:
                    epochs_bar.set_postfix(val=f"{self.rows[-1]['val_loss']:.4g}", refresh=False)
                if stop:
                    status = "stopped_early"
                    break
        finally:
            epochs_bar.close()
            self.log.close()
        best_row = next((r for r in self.rows if r["step"] == st.best["step"]), {})
        self.summary.set_best_metrics(best_row)
        final = self.rows[-1] if self.rows else {}
        self.summary.update(status=status, final_val_loss=final.get("val_loss"),
                            final_train_loss=final.get("train_loss"), finished_at=_now(), **self._progress(st))
        self._write_summary()

    def _setup_training(self, ckpt: dict | None) -> TrainState:
        """Optimiser, schedule, scaler, FLOP model and DDP wrapper; the state to start from."""
        cfg, model = self.config, self.model
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise MatscaleError(f"{cfg.arch}-{cfg.size} has no trainable parameters")
        steps_per_epoch = len(distributed.global_batches(len(self.train_set), cfg.batch_size, cfg.seed, 0))
        # max_steps: that many steps whatever the data size (the last pass partial); else whole epochs
        total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
        self.total_steps, self.n_epochs = total_steps, -(-total_steps // steps_per_epoch)
        self.stop_early = False
        self.optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
        self.scheduler = make_scheduler(self.optimizer, total_steps, cfg)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.precision == "fp16")
        self.augment = torch.Generator().manual_seed(cfg.seed + 1_000_003) if cfg.rotation_augment else None
        self.rotate = rotation_fns() if cfg.rotation_augment else None
        step_loss = lambda m, b: loss(m(b), b, self.weights, self.scales)[0]  # noqa: E731
        st = TrainState(train_meter=LossMeter(self.weights, self.scales))
        if ckpt is None:
            self.flop_model = flops.measure(model, self.train_set, self.natoms, cfg.batch_size, step_loss,
                                            partial(collate, labels=True), self.device, seed=cfg.seed)
            seed_everything(cfg.seed)  # FLOP measurement must not shift the training RNG streams
        else:
            checkpoint.load_model_state(model, ckpt["model"], self.rundir.checkpoints / "last.pt")
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.scaler.load_state_dict(ckpt["scaler"])
            checkpoint.set_rng_state(ckpt["rng"], self.augment)
            self.flop_model = flops.FlopModel.from_dict(ckpt["flop_model"])
            st = TrainState.from_checkpoint(ckpt, st.train_meter)
            self.rows = list(ckpt["metrics"])
            if self.info.is_main:
                self.rundir.write_metrics(self.rows)  # drop rows written after the checkpoint
        self.summary.update(flop_model=self.flop_model.to_dict(), total_steps=total_steps,
                            steps_per_epoch=steps_per_epoch)
        find_unused = False
        if self.info.enabled:  # DDP needs to know whether some parameters never get a gradient
            probe = collate([self.train_set[0]], labels=True).to(self.device)
            find_unused = bool(distributed.unused_parameters(model, probe, step_loss))
        if cfg.compile:  # after the FLOP count (it deep-copies the eager model)
            from matscale.train.compile import compile_model
            compile_model(model)
        self.ddp_model = distributed.wrap(model, self.info, self.device, find_unused)
        self.last_save = time.perf_counter()
        return st

    def _epoch(self, st: TrainState, epoch: int) -> None:
        """One pass over this epoch's global batches (this process's shard of each)."""
        from tqdm import tqdm

        cfg, info = self.config, self.info
        batches = distributed.global_batches(len(self.train_set), cfg.batch_size, cfg.seed, epoch)
        shards = [distributed.shard(b, info) for b in batches]
        loader = torch.utils.data.DataLoader(
            self.train_set, batch_sampler=[idx.tolist() for idx, _ in shards],
            collate_fn=partial(collate, labels=True), num_workers=cfg.num_workers,
            pin_memory=torch.device(self.device).type == "cuda")
        self.model.train()
        bar = tqdm(total=len(batches), desc=f"epoch {epoch + 1}", leave=False, unit="step",
                   disable=self.quiet, dynamic_ncols=True)
        for gb, (_, stand_in), batch in zip(batches, shards, loader):
            if st.step >= self.total_steps:  # max_steps reached inside the last pass
                break
            total = self._step(st, gb, stand_in, batch.to(self.device))
            bar.update(1)
            if not self.quiet:
                bar.set_postfix(loss=f"{total * info.world_size:.4g}", refresh=False)
            if after_step is not None:
                after_step(st.step)
            if cfg.val_every_steps and st.step % cfg.val_every_steps == 0 and st.step < self.total_steps:
                if self._validation(st):
                    self.stop_early = True
                    break
        bar.close()
        st.epoch = epoch + 1

    def _step(self, st: TrainState, gb: np.ndarray, stand_in: bool, batch) -> float:
        """One optimiser step on global batch `gb` (this shard: `batch`); returns the loss."""
        cfg, info = self.config, self.info
        n_s, n_a = len(gb), int(self.natoms[gb].sum())
        if self.augment is not None:
            batch = self.rotate(batch, self.augment, n_s, distributed.shard(np.arange(n_s), info)[0])
        with autocast(self.device, cfg.precision):
            pred = self.ddp_model(batch)
        total, err = loss(pred, batch, self.weights, self.scales, n_s, n_a)
        if stand_in:  # a process without a structure of its own in this batch
            total = total * 0.0
        if cfg.precision != "fp16" and not torch.isfinite(total):
            raise nonfinite_loss_error(total.item(), st.step + 1, self.train_set, gb, self.norm)
        self.scaler.scale(total * info.world_size).backward()
        self.scaler.unscale_(self.optimizer)
        clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        st.grad_norms.append(float(torch.nn.utils.clip_grad_norm_(self.params, clip)))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if not stand_in:
            st.train_meter.add(err, batch.num_structures, batch.num_atoms)
        st.step += 1
        st.samples_seen += n_s
        st.atoms_seen += n_a
        st.flops += self.flop_model(self.natoms[gb])
        return float(total.item()) if not self.quiet else 0.0

    def _validate_and_save(self, st: TrainState) -> bool:
        """At an epoch end: validate when due, parity data, last.pt; True when stopping early."""
        cfg, info = self.config, self.info
        stop = self.stop_early
        last_epoch = st.epoch == self.n_epochs or stop
        done = bool(self.rows) and self.rows[-1]["step"] == st.step  # validated at this step already
        validated = (cfg.val_every_steps == 0 and st.epoch % cfg.val_every == 0) or last_epoch
        if validated and not done:
            stop = self._validation(st) or stop
        if cfg.vis_every and st.epoch % cfg.vis_every == 0 and info.is_main:
            self._write_vis(st.epoch)
        # last.pt after every validation, at the end, and at least every CHECKPOINT_SECONDS
        due = validated or last_epoch or time.perf_counter() - self.last_save > CHECKPOINT_SECONDS
        if info.is_main and due:
            self.last_save = time.perf_counter()
            checkpoint.save(self.rundir.checkpoints / "last.pt", {
                **self._model_payload(st.epoch, st.step), **st.progress(),
                "wall_s": self._wall(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": checkpoint.rng_state(self.augment), "flop_model": self.flop_model.to_dict(),
                "train_meter": st.train_meter.state_dict(), "grad_norms": list(st.grad_norms),
                "metrics": self.rows})
            if validated:
                self.summary.update(**self._progress(st))
                self._write_summary()
        distributed.barrier()
        return stop

    def _validation(self, st: TrainState) -> bool:
        """Validate now and start new train-metric windows; True when early stopping triggers."""
        stop = self._after_validation(st)
        st.train_meter = LossMeter(self.weights, self.scales)
        st.grad_norms = []
        return stop

    def _after_validation(self, st: TrainState) -> bool:
        """Validate, append a metrics row, save best; True when early stopping triggers."""
        cfg = self.config
        st.train_meter.all_reduce()
        val = self._validate()
        row = {"epoch": st.epoch, "step": st.step, "samples_seen": st.samples_seen,
               "atoms_seen": st.atoms_seen, "flops": st.flops, "wall_s": self._wall(),
               "lr": self.optimizer.param_groups[0]["lr"],
               "grad_norm": float(np.mean(st.grad_norms)) if st.grad_norms else float("nan"),
               **(st.train_meter.result("train") if not st.train_meter.empty else {}), **val}
        self.rows.append(row)
        self.log.validation(row)
        best = st.best
        improved = best["val_loss"] is None or val["val_loss"] < best["val_loss"]
        if improved:
            best.update(val_loss=val["val_loss"], epoch=st.epoch, step=st.step, bad_validations=0)
        else:
            best["bad_validations"] += 1
        if self.info.is_main:
            self.rundir.write_metrics(self.rows)
            if improved:
                checkpoint.save(self.rundir.checkpoints / "best.pt",
                                self._model_payload(st.epoch, st.step, val_loss=val["val_loss"]))
        return bool(cfg.patience) and best["bad_validations"] >= cfg.patience

    def _open_log(self, total_steps: int, state: dict) -> None:
        """Log lines when stdout is no terminal, TensorBoard when asked for; rank 0 only."""
        if self.info.is_main:
            tb = self.rundir.path / TENSORBOARD_DIR if self.config.tensorboard else None
            self.log = RunLog(self.run_id, self.n_epochs, total_steps, tensorboard_dir=tb,
                              start_step=state["step"], start_samples=state["samples_seen"])

    def _progress(self, st: TrainState) -> dict[str, Any]:
        return dict(best_val_loss=st.best["val_loss"], best_epoch=st.best["epoch"], best_step=st.best["step"],
                    flops=st.flops, samples_seen=st.samples_seen, atoms_seen=st.atoms_seen, steps=st.step,
                    epochs_completed=st.epoch, wall_s=self._wall())

    def _validate(self) -> dict[str, float]:
        idx = np.array_split(np.arange(len(self.val_set)), self.info.world_size)[self.info.rank]
        meter = evaluate(distributed.unwrap(self.model), self.val_set, self.weights, self.scales, indices=idx,
                         batch_size=max(self.config.batch_size, 1), device=self.device,
                         precision=self.config.precision)
        return meter.result("val")

    def _write_vis(self, epoch: int) -> None:
        n = min(VIS_STRUCTURES, len(self.val_set))
        data = parity(self.model, self.val_set, indices=np.arange(n), batch_size=self.config.batch_size,
                      device=self.device, precision=self.config.precision)
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, **data)
        atomic_write_bytes(self.rundir.vis / f"epoch_{epoch:04d}.npz", buf.getvalue())

    def _model_payload(self, epoch: int, step: int, val_loss: float | None = None) -> dict[str, Any]:
        return {"run_id": self.run_id, "config": self.config.to_dict(), "epoch": epoch, "step": step,
                "val_loss": val_loss, "model": distributed.unwrap(self.model).state_dict(),
                "normalization": self.norm.to_dict(), "loss_units": self.scales.to_dict()}
