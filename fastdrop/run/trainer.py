"""One trainer for every strategy (torchvision's train_one_epoch/evaluate, minus the if/elif dispatch).

Per epoch: set the LR (fastdrop.schedule.get_lr), let the strategy prepare (it may build a feature
cache), run its batches through `strategy.forward`, step SGD, let the strategy score and decide. T is the
sum of the synchronised training times of all epochs, warm-up and cache building included; test
evaluation of the full model is timed apart. The loss is accumulated on the device and read once per
epoch, so the hot loop has no host sync. After every epoch an atomic checkpoint lets `resume=true`
continue a killed run exactly; the result row is written at the end, also for diverged or failed runs.
Under torchrun the same loop runs on every rank (fastdrop.distributed: its shard of the rows, a DDP
wrapper over the trained units, collectives for loss, accuracy, T and the cut); rank 0 writes.
"""
from __future__ import annotations

import logging
import math
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import torch
from omegaconf import DictConfig

from . import checkpoint, distributed, runlock
from .checkpoint import CKPT, config_fingerprint  # noqa: F401  (re-exported: tests, callbacks)
from .data import DATASETS, ImageData, StreamPolicy, load_data
from .evaluate import evaluate
from .data.subset import class_counts
from .flops import unit_macs
from .loggers import make_logger
from .models import Chain, apply_weights, build, chain_of, default_name
from .models.weights import is_torchvision_name
from .results import WriteError, atomic_torch_save, write_row
from .row import build_row
from .schedule import get_lr
from .signals import raise_on_sigterm
from .strategies import STRATEGIES, RunContext
from .strategies.base import synchronize
from .validate import USER_ERRORS, ConfigError, schedule_warnings, validate

log = logging.getLogger("fastdrop")

# Called as cb(trainer, epoch, record) after each epoch's checkpoint is on disk. Empty in production; the
# tests put fault injection here (tests/kill_run.py SIGKILLs a real CLI run after a chosen epoch).
CALLBACKS: list = []


class Diverged(RuntimeError):
    pass


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} asked for, but no CUDA device is available")
    return dev


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: str | Path, chain: Chain | None = None,
                 data: ImageData | None = None, experiment: str | None = None, name: str | None = None):
        """`chain` (anything fastdrop.models.chain_of accepts, rows named `name`) and `data` may be
        supplied directly (a user's own network: see fastdrop.api); otherwise they are built from the config."""
        validate(cfg)
        self.cfg, self.run_dir, self.experiment = cfg, Path(run_dir), experiment
        self.world = distributed.init(cfg.device, cfg.dist.backend, cfg.dist.timeout_min)
        self._locked = runlock.acquire_for_world(self.run_dir, self.world)  # before anything in it is written
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._check_results_dir()
        self.device = distributed.device_for(self.world, resolve_device(cfg.device))
        self.dtype = torch.float64 if cfg.precision == "64-true" else torch.float32
        torch.manual_seed(cfg.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.warnings: list[str] = []  # stored in the row: what a user must know about this run's result
        self.data = self._load_data(data)
        self.n_test = len(self.data.test)
        self._shard()
        self.data.to(self.device)
        self.custom = chain is not None
        self.chain, self.model_name, self.model_info = self._build_chain(chain, name)
        for msg in schedule_warnings(cfg, self.chain.n_conv):
            self.warn(msg)
        if cfg.dist.sync_bn and self.world.enabled:
            self.chain = distributed.convert_sync_bn(self.chain)
        torch.manual_seed(cfg.seed + self.world.rank)  # dropout masks per rank (the weights are rank 0's)
        channels_last = self.device.type == "cuda" if cfg.channels_last is None else cfg.channels_last
        self.chain.to(device=self.device, dtype=self.dtype)
        if channels_last:
            self.chain.to(memory_format=torch.channels_last)
        self.ctx = RunContext(device=self.device, dtype=self.dtype,
                              autocast="bf16" if cfg.precision == "bf16-mixed" else None, seed=cfg.seed,
                              batch_size=cfg.batch_size // self.world.size, eval_batch_size=cfg.data.eval_batch_size,
                              run_dir=self.run_dir, channels_last=channels_last, rank=self.world.rank,
                              world_size=self.world.size, epochs=cfg.epochs)
        sample = self.data.normalize(self.data.train.fetch(slice(0, 1)), self.dtype)
        self.ctx.unit_macs = unit_macs(self.chain, sample)
        self.strategy = STRATEGIES[cfg.strategy.name](cfg.strategy, self.chain, self.data, self.ctx)
        self.optimizer = torch.optim.SGD(self.strategy.param_groups(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                         weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.history: list[dict] = []
        self._wrapped_at: int | None = None  # n_cut the DDP wrapper was built for
        self.start_epoch = 1
        self.T_s = 0.0
        self.run_id = self._make_run_id()
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    # -- set-up helpers ---------------------------------------------------------------------------
    def _load_data(self, data: ImageData | None) -> ImageData:
        """The configured splits (or the user's `data`, subset alike), with class counts and the warnings
        a user must see: a paper preset on a subset it was not written for, a split with under two classes."""
        cfg, d = self.cfg, self.cfg.data
        if data is None:
            data = load_data(d.name, d.root, d.download, d.train_subset, d.test_subset, d.augment, d.image_size,
                             d.subset_seed, d.memory_budget_gb,
                             stats="imagenet" if is_torchvision_name(cfg.model.weights) else None,
                             stream=StreamPolicy(d.stream, d.memory_budget_gb, d.workers))
        else:
            data.train = data.train.sample(d.train_subset, d.subset_seed)
            data.test = data.test.sample(d.test_subset, d.subset_seed)
        self.class_counts = {k: class_counts(getattr(data, k).y, data.num_classes) for k in ("train", "test")}
        preset_warning = DATASETS.attr(data.name, "paper_preset_warning")
        if (self.experiment or "").startswith("paper_") and preset_warning:
            self.warn(f"experiment={self.experiment} {preset_warning}")
        for k, counts in self.class_counts.items():
            if sum(c > 0 for c in counts) < 2:
                self.warn(f"the {k} split holds fewer than two classes ({counts}): its accuracy and loss mean nothing")
        n, unseen = len(data.train), sum(c == 0 for c in self.class_counts["train"])
        if unseen:
            self.warn(f"the train split holds {n} images for {data.num_classes} classes: {unseen} classes have no "
                      f"training image (data.train_subset={d.train_subset})")
        if cfg.batch_size >= n:
            self.warn(f"batch_size {cfg.batch_size} >= the {n} training images: one optimiser step per epoch")
        return data

    def _build_chain(self, chain, name: str | None) -> tuple[Chain, str, dict]:
        """The configured network, or the user's own `chain` (row name `name`), with the weights applied."""
        cfg = self.cfg
        if chain is None:
            built, info = build(cfg.model, self.data.num_classes, self.data.in_channels, self.data.image_size)
            return built, cfg.model.name, info
        built = chain_of(chain)
        info = {"stem": None, **apply_weights(chain, built, cfg.model.weights, new_classifier=cfg.model.new_classifier)}
        return built, name or default_name(chain, built), info

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)
            log.warning(msg)

    def _check_results_dir(self) -> None:
        runs = Path(self.cfg.results_dir) / "runs"
        try:
            runs.mkdir(parents=True, exist_ok=True)
            probe = runs / f".write-test-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"results_dir {self.cfg.results_dir!r} is not writable ({e.strerror or e})") from None

    def _make_run_id(self) -> str:
        c = self.cfg
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_id = f"{self.model_name}-{self.data.name}-{c.strategy.name}-s{c.seed}-{stamp}-{uuid.uuid4().hex[:6]}"
        return distributed.gather(self.world, run_id)[0]  # rank 0's

    def _shard(self) -> None:
        """Under DDP: this rank's fixed shard of the training split, its share of the test split."""
        w, cfg = self.world, self.cfg
        if not w.enabled:
            return
        if cfg.batch_size % w.size:
            raise ConfigError(f"batch_size {cfg.batch_size} is the global batch and must be divisible by the "
                              f"{w.size} processes (per-rank batch = batch_size / world size)")
        if cfg.dist.sync_bn and self.device.type != "cuda":
            raise ConfigError("dist.sync_bn=true needs GPUs (torch's SyncBatchNorm has no CPU kernel)")
        tr, te = self.data.train, self.data.test
        if len(tr) < w.size:
            raise ConfigError(f"{len(tr)} training images cannot be shared by {w.size} processes")
        idx = distributed.shard(len(tr), w, cfg.seed)
        self.data.train = tr.take(idx)
        self.data.test = te.take(torch.arange(w.rank, len(te), w.size))
        if len(tr) % w.size and w.is_main:
            log.warning("%d training images left out so that the %d ranks hold equal shards", len(tr) % w.size,
                        w.size)

    # -- checkpoint -------------------------------------------------------------------------------
    def save_checkpoint(self, epoch: int) -> None:
        """Rank 0 writes it (the ranks hold the same model); every rank's RNG state goes in."""
        if self.cfg.checkpoint == "none":
            return
        rng = {"torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None}
        rng_ranks = distributed.gather(self.world, rng)
        if not self.world.is_main:
            distributed.barrier(self.world)
            return
        state = {
            "fingerprint": config_fingerprint(self.cfg), "epoch": epoch, "run_id": self.run_id,
            "started_at": self.started_at, "T_s": self.T_s, "history": self.history, "warnings": self.warnings,
            "model": self.chain.state_dict(), "optimizer": self.optimizer.state_dict(),
            "strategy": self.strategy.state_dict(), "world_size": self.world.size, "rng": rng_ranks[0],
            "rng_ranks": rng_ranks,
        }
        atomic_torch_save(state, self.run_dir / CKPT)
        checkpoint.after_save(self.run_dir, self.cfg.checkpoint, epoch)
        distributed.barrier(self.world)  # no rank goes on (or is killed) before the checkpoint is whole

    def load_checkpoint(self) -> None:
        path = self.run_dir / CKPT
        if not path.exists():
            raise ConfigError(f"resume=true but {path} does not exist; pass hydra.run.dir=<the run's directory>")
        try:
            state = checkpoint.load(path, map_location=self.device)
        except Exception as e:
            raise ConfigError(checkpoint.unreadable(path, e)) from None
        if state["fingerprint"] != config_fingerprint(self.cfg):
            raise ConfigError(f"checkpoint {path} was written with different overrides; resume with the same "
                              "overrides as the original run (the CLI keeps them in its .hydra/overrides.yaml)")
        if state.get("world_size", 1) != self.world.size:
            raise ConfigError(f"checkpoint {path} was written by {state.get('world_size', 1)} process(es), this run "
                              f"has {self.world.size}: resume with the same number (the training rows are sharded "
                              "per rank, so a different number is not supported)")
        self.chain.load_state_dict(state["model"])
        self.strategy.load_state_dict(state["strategy"])
        self.optimizer.load_state_dict(state["optimizer"])
        rng = state.get("rng_ranks", [state["rng"]])[self.world.rank]
        torch.set_rng_state(rng["torch"].cpu())
        if rng["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
        self.history, self.T_s, self.run_id = state["history"], state["T_s"], state["run_id"]
        self.started_at = state["started_at"]
        self.warnings = list(dict.fromkeys(state.get("warnings", []) + self.warnings))
        self.start_epoch = state["epoch"] + 1
        log.info("resumed %s after epoch %d (T so far %.1f s)", self.run_id, state["epoch"], self.T_s)

    # -- training ---------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict:
        cfg, strat, dev = self.cfg, self.strategy, self.device
        lr = get_lr(epoch, cfg.optim.lr, cfg.optim.milestones, cfg.optim.gamma) * strat.lr_scale
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self._wrap_for_ddp()
        synchronize(dev)
        t0 = time.perf_counter()
        cache_s = strat.begin_epoch(epoch)
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        seen, n_train = 0, len(self.data.train)
        bar = _progress(cfg, epoch, n_train) if self.world.is_main else None
        for state, y in strat.batches(epoch):
            lrs = strat.unit_lrs((epoch - 1 + seen / n_train) / cfg.epochs, cfg.optim.lr * strat.lr_scale)
            if lrs is not None:  # a policy with per-unit rates (FreezeOut): one optimiser group per unit
                for g, lr_u in zip(self.optimizer.param_groups, lrs):
                    g["lr"] = lr_u
            with self.ctx.autocast_ctx():
                loss = self.loss_fn(strat.forward(state), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            strat.after_backward()
            self.optimizer.step()
            loss_sum += loss.detach() * len(y)
            seen += len(y)
            if bar is not None:
                bar.update(len(y))
        distributed.broadcast_buffers(self.world, self.chain)
        stats = strat.epoch_stats()  # what ran this epoch, before end_epoch may cut further
        totals = distributed.all_sum(self.world, torch.stack([loss_sum, torch.tensor(float(seen), device=dev,
                                                                                       dtype=torch.float64)]))
        train_loss = totals[0].item() / max(totals[1].item(), 1)  # the global batch's: every rank decides alike
        scores = strat.end_epoch(epoch, train_loss)
        distributed.agree(self.world, strat.n_cut, f"the cut after epoch {epoch}")
        synchronize(dev)
        train_s = distributed.all_max(self.world, time.perf_counter() - t0)  # T: the slowest rank's
        cache_s = distributed.all_max(self.world, cache_s)
        if bar is not None:
            bar.close()
        self.T_s += train_s
        t1 = time.perf_counter()
        acc = evaluate(self.chain, self.data, self.ctx, self.world)
        synchronize(dev)
        eval_s = distributed.all_max(self.world, time.perf_counter() - t1)
        stats["dropped_units"] = self.chain.names[: strat.n_cut]
        for w in scores.pop("warnings", []):
            self.warn(w)
        rec = {"epoch": epoch, "lr": lr, "train_time_s": train_s, "cache_time_s": cache_s, "eval_time_s": eval_s,
               "train_loss": train_loss, "test_acc": acc, **stats, **scores}
        return rec

    def _wrap_for_ddp(self) -> None:
        """Under torchrun: a DDP wrapper over the units that train now (rebuilt after a cut)."""
        if self.world.enabled and self._wrapped_at != self.strategy.n_cut:
            self.strategy.train_runner = self.chain.run  # drop the old wrapper (and its hooks) first
            self.strategy.train_runner = distributed.wrap(self.world, self.chain, self.device)
            self._wrapped_at = self.strategy.n_cut

    def fit(self) -> dict:
        if self.cfg.resume:
            self.load_checkpoint()
        status, reason = "completed", ""
        log.info("run directory: %s", self.run_dir.resolve())
        raise_on_sigterm()
        logger = make_logger(self.cfg.logger.name, self.run_dir, self.world.rank)
        row_error = None
        try:
            for epoch in range(self.start_epoch, self.cfg.epochs + 1):
                rec = self.train_epoch(epoch)
                self.history.append(rec)
                log.info("epoch %d/%d  loss %.4f  acc %.2f%%  train %.1fs (cache %.1fs)  eval %.1fs  cut %d/%d",
                         epoch, self.cfg.epochs, rec["train_loss"], rec["test_acc"], rec["train_time_s"],
                         rec["cache_time_s"], rec["eval_time_s"], len(rec["dropped_units"]), self.chain.n_conv)
                if not math.isfinite(rec["train_loss"]):
                    raise Diverged(f"training loss is {rec['train_loss']} at epoch {epoch}")
                self.save_checkpoint(epoch)
                logger.log_epoch(rec)
                for cb in CALLBACKS:
                    cb(self, epoch, rec)
        except Diverged as e:
            status, reason = "diverged", str(e)
        except WriteError as e:  # no space or permission: one line, exit 4; checkpoint.pt is the last whole one
            status, reason = "failed", str(e)
            raise
        except USER_ERRORS as e:
            status, reason = "failed", str(e)
            raise
        except KeyboardInterrupt as e:
            stop = str(e) or "stopped by SIGINT"  # Ctrl-C; SIGTERM raises signals.Stopped, which says so
            status, reason = "failed", f"{stop} after epoch {len(self.history)}/{self.cfg.epochs}"
            raise
        except BaseException as e:
            status, reason = "failed", f"{type(e).__name__}: {e}"
            raise
        finally:
            self.row = self._row(status, reason)
            try:
                self.row_path = write_row(self.cfg.results_dir, self.row) if self.world.is_main else None
            except WriteError as e:  # raised below unless the run already stops with its own error
                self.row_path, row_error = None, e
            self.strategy.close()
            logger.close()
            try:
                if self.world.is_main:
                    checkpoint.at_end(self.run_dir, self.cfg.checkpoint, status, self.chain.state_dict())
            finally:
                self._unlock()
        if row_error is not None:
            raise row_error
        return self.row

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            runlock.release(self.run_dir)

    # -- the result row ---------------------------------------------------------------------------
    def _row(self, status: str, reason: str) -> dict:
        return build_row(self, status, reason)




def _progress(cfg, epoch: int, total: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}/{cfg.epochs} {cfg.strategy.name}", unit="img", leave=False,
                dynamic_ncols=True, mininterval=1.0)
