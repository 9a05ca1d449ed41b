"""One trainer for every strategy: the loop, fit -> train_epoch -> evaluate -> hooks (torchvision's
train_one_epoch/evaluate, minus the if/elif dispatch). What it builds first is in fastdrop.run.setup,
what it saves in fastdrop.run.checkpoint, how it talks to other ranks in fastdrop.run.distributed.World.

Per epoch: set the LR (fastdrop.run.lr.get_lr), let the strategy prepare (it may build a feature
cache), run its batches through `strategy.forward`, step SGD, let the strategy score and decide. T is the
sum of the synchronised training times of all epochs, warm-up and cache building included; test
evaluation of the full model is timed apart. The loss is accumulated on the device and read once per
epoch, so the hot loop has no host sync. After every epoch an atomic checkpoint lets `resume=true`
continue a killed run exactly; the result row is written at the end, also for diverged or failed runs.
Under torchrun the same loop runs on every rank (its shard of the rows, a DDP wrapper over the trained
units, collectives for loss, accuracy, T and the cut); rank 0 writes.
"""
from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from omegaconf import DictConfig

from ..config.validate import cut_schedule_warnings, validate
from ..data import ImageData
from ..errors import user_errors
from ..files import WriteError
from ..models import Chain
from ..results.row import build_row
from ..results.write import write_row
from ..strategies import STRATEGIES
from ..strategies.base import synchronize
from . import checkpoint, lock, setup
from .evaluate import evaluate
from .flops import unit_macs
from .hooks import Hooks
from .lr import get_lr
from .signals import raise_on_sigterm

log = logging.getLogger("fastdrop")


class Diverged(RuntimeError):
    pass


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: str | Path, chain: Chain | None = None,
                 data: ImageData | None = None, experiment: str | None = None, name: str | None = None,
                 validated: bool = False):
        """`chain` (anything fastdrop.models.chain_of accepts, rows named `name`) and `data` may be
        supplied directly (a user's own network: see fastdrop.api); otherwise they are built from the
        config. `validated`: the caller has already run fastdrop.config.validate on `cfg` (the CLI's
        pre-run check, fastdrop.api.fit), so it is not checked twice."""
        raise_on_sigterm()  # SIGTERM unwinds like Ctrl-C from here on: the row says how the run ended
        if not validated:
            validate(cfg)
        self.cfg, self.run_dir, self.experiment = cfg, Path(run_dir), experiment
        self.world, self._locked = setup.open_run(cfg, self.run_dir)
        self.device, self.dtype = setup.device_and_dtype(cfg, self.world)
        self.warnings: list[str] = []  # stored in the row: what a user must know about this run's result
        self.data, self.class_counts = setup.prepare_data(cfg, data, experiment, self.warn)
        self.n_test = len(self.data.test)
        self.world.shard_data(self.data, cfg, self.device)
        self.data.to(self.device)
        self.custom = chain is not None
        self.chain, self.model_name, self.model_info = setup.build_chain(cfg, chain, name, self.data)
        for msg in cut_schedule_warnings(cfg, self.chain.n_conv):
            self.warn(msg)
        self.chain, channels_last = setup.place_chain(cfg, self.chain, self.world, self.device, self.dtype)
        self.ctx = setup.run_context(cfg, self.world, self.device, self.dtype, self.run_dir, channels_last)
        sample = self.data.normalize(self.data.train.fetch(slice(0, 1)), self.dtype)
        self.ctx.unit_macs = unit_macs(self.chain, sample)
        self.strategy = STRATEGIES[cfg.strategy.name](cfg.strategy, self.chain, self.data, self.ctx)
        self.optimizer = setup.optimizer(cfg, self.strategy)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.history: list[dict] = []
        self._wrapped_at: int | None = None  # n_cut the DDP wrapper was built for
        self.start_epoch, self.T_s = 1, 0.0
        self.run_id = setup.run_id(cfg, self.model_name, self.data.name, self.world)
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)
            log.warning(msg)

    def save_checkpoint(self, epoch: int) -> None:
        checkpoint.save(self, epoch)

    def load_checkpoint(self) -> None:
        done = checkpoint.restore(self)
        self.start_epoch = done + 1
        log.info("resumed %s after epoch %d (T so far %.1f s)", self.run_id, done, self.T_s)

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self) -> dict:
        if self.cfg.resume:
            self.load_checkpoint()
        status, reason = "completed", ""
        log.info("run directory: %s", self.run_dir.resolve())
        hooks = Hooks(self.cfg, self.run_dir, self.world)
        try:
            for epoch in range(self.start_epoch, self.cfg.epochs + 1):
                rec = self.train_epoch(epoch)
                self.history.append(rec)
                hooks.epoch_done(rec, self.chain.n_conv)
                if not math.isfinite(rec["train_loss"]):
                    raise Diverged(f"training loss is {rec['train_loss']} at epoch {epoch}")
                self.save_checkpoint(epoch)
                hooks.epoch_saved(self, rec)
        except Diverged as e:
            status, reason = "diverged", str(e)
        except BaseException as e:
            status, reason = "failed", self._failure(e)
            raise
        finally:
            row_error = self._finish(status, reason, hooks)
        if row_error is not None:
            raise row_error
        return self.row

    def train_epoch(self, epoch: int) -> dict:
        cfg, strat, w = self.cfg, self.strategy, self.world
        o = cfg.optim
        sched_lr = get_lr(epoch, o.lr, o.milestones, o.gamma, o.schedule, cfg.epochs)  # the schedule's, for the policy
        lr = sched_lr * strat.lr_scale
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self._wrapped_at = w.rewrap(strat, self.chain, self.device, self._wrapped_at)
        synchronize(self.device)
        t0 = time.perf_counter()
        cache_s = strat.begin_epoch(epoch)
        loss_sum, seen = self._batches(epoch, lr)
        w.broadcast_buffers(self.chain)
        stats = strat.epoch_stats()  # what ran this epoch, before end_epoch may cut further
        totals = w.all_sum(torch.stack([loss_sum, torch.tensor(float(seen), device=self.device,
                                                               dtype=torch.float64)]))
        train_loss = totals[0].item() / max(totals[1].item(), 1)  # the global batch's: every rank decides alike
        scores = strat.end_epoch(epoch, train_loss, sched_lr)
        w.agree(strat.n_cut, f"the cut after epoch {epoch}")
        synchronize(self.device)
        train_s = w.all_max(time.perf_counter() - t0)  # T: the slowest rank's
        cache_s = w.all_max(cache_s)
        self.T_s += train_s
        acc, eval_s = self._evaluate()
        stats["dropped_units"] = self.chain.names[: strat.n_cut]
        for msg in scores.pop("warnings", []):
            self.warn(msg)
        return {"epoch": epoch, "lr": lr, "train_time_s": train_s, "cache_time_s": cache_s, "eval_time_s": eval_s,
                "train_loss": train_loss, "test_acc": acc, **stats, **scores}

    def _batches(self, epoch: int, lr: float) -> tuple[torch.Tensor, int]:
        """One pass over the strategy's batches: SGD steps; the loss summed on the device."""
        cfg, strat = self.cfg, self.strategy
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        seen, n_train = 0, len(self.data.train)
        bar = Hooks.progress_bar(cfg, epoch, n_train, self.world)
        for state, y in strat.batches(epoch):
            lrs = strat.unit_lrs((epoch - 1 + seen / n_train) / cfg.epochs, cfg.optim.lr * strat.lr_scale, lr)
            if lrs is not None:  # a policy with per-unit rates (FreezeOut, drift's cooling): a group per unit
                for g, lr_u in zip(self.optimizer.param_groups, lrs):
                    g["lr"] = lr_u
            loss = self.step(state, y)
            loss_sum += loss.detach() * len(y)
            seen += len(y)
            if bar is not None:
                bar.update(len(y))
        if bar is not None:
            bar.close()
        return loss_sum, seen

    def step(self, state, y: torch.Tensor, score: bool = True) -> torch.Tensor:
        """One SGD step on a batch; score=False leaves out the score accumulation (the bench prices it)."""
        with self.ctx.autocast_ctx():
            loss = self.loss_fn(self.strategy.forward(state), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if score:
            self.strategy.after_backward()
        self.optimizer.step()
        return loss

    def _evaluate(self) -> tuple[float, float]:
        """Test accuracy of the full chain and its time (the slowest rank's), apart from T."""
        t1 = time.perf_counter()
        acc = evaluate(self.chain, self.data, self.ctx, self.world)
        synchronize(self.device)
        return acc, self.world.all_max(time.perf_counter() - t1)

    # -- the end ----------------------------------------------------------------------------------
    def _failure(self, e: BaseException) -> str:
        """The row's status_reason for a run that stopped with `e`."""
        if isinstance(e, KeyboardInterrupt):  # Ctrl-C; SIGTERM raises signals.Stopped, which says so
            return f"{str(e) or 'stopped by SIGINT'} after epoch {len(self.history)}/{self.cfg.epochs}"
        if isinstance(e, (WriteError, *user_errors())):  # no space or permission (exit 4), a user error (2)
            return str(e)
        return f"{type(e).__name__}: {e}"

    def _finish(self, status: str, reason: str, hooks: Hooks) -> WriteError | None:
        """Write the row (rank 0), close what the run opened, apply the checkpoint retention, unlock.
        A row that cannot be written is returned, to raise unless the run already stops with its own error."""
        self.row, row_error = build_row(self, status, reason), None
        try:
            self.row_path = write_row(self.cfg.results_dir, self.row) if self.world.is_main else None
        except WriteError as e:
            self.row_path, row_error = None, e
        self.strategy.close()
        hooks.close()
        try:
            if self.world.is_main:
                checkpoint.at_end(self.run_dir, self.cfg.checkpoint, status, self.chain.state_dict())
        finally:
            if self._locked:
                self._locked = False
                lock.release(self.run_dir)
        return row_error
