"""One trainer for every strategy (torchvision's train_one_epoch/evaluate, minus the if/elif dispatch).

Per epoch: set the LR (fastdrop.schedule.get_lr), let the strategy prepare (it may build a feature
cache), run its batches through `strategy.forward`, step SGD, let the strategy score and decide. T is the
sum of the synchronised training times of all epochs, warm-up and cache building included; test
evaluation of the full model is timed apart. The loss is accumulated on the device and read once per
epoch, so the hot loop has no host sync. After every epoch an atomic checkpoint lets `resume=true`
continue a killed run exactly; the result row is written at the end, also for diverged or failed runs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal
import socket
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import torch
import torchvision
from omegaconf import DictConfig, OmegaConf

from .config import PRECISIONS
from .data import DataError, ImageData, load_data
from .flops import unit_macs
from .models import Chain, build_model
from .results import atomic_torch_save, git_commit, write_row
from .schedule import get_lr
from .signals import raise_on_sigterm
from .strategies import STRATEGIES, RunContext
from .strategies.base import synchronize
from .strategies.cache import CacheError

log = logging.getLogger("fastdrop")

CKPT = "checkpoint.pt"
KILL_ENV = "FASTDROP_TEST_KILL_AFTER_EPOCH"  # fault injection for the resume tests: SIGKILL after this epoch


class ConfigError(ValueError):
    pass


class Diverged(RuntimeError):
    pass


USER_ERRORS = (ConfigError, DataError, CacheError)


def validate(cfg: DictConfig) -> None:
    problems = []
    if cfg.epochs <= 0:
        problems.append(f"epochs must be > 0 (got {cfg.epochs})")
    if cfg.batch_size <= 0:
        problems.append(f"batch_size must be > 0 (got {cfg.batch_size})")
    if cfg.optim.lr <= 0:
        problems.append(f"optim.lr must be > 0 (got {cfg.optim.lr})")
    if cfg.precision not in PRECISIONS:
        problems.append(f"precision must be one of {', '.join(PRECISIONS)} (got {cfg.precision!r})")
    if cfg.model.width <= 0:
        problems.append(f"model.width must be > 0 (got {cfg.model.width})")
    s = cfg.strategy
    if s.name not in STRATEGIES:
        problems.append(f"strategy.name must be one of {', '.join(STRATEGIES)} (got {s.name!r})")
    if s.policy not in ("learn_and_drop", "schedule", "none"):
        problems.append(f"strategy.policy must be learn_and_drop, schedule or none (got {s.policy!r})")
    if s.candidates not in ("eq4", "max_prefix_sum"):
        problems.append(f"strategy.candidates must be eq4 or max_prefix_sum (got {s.candidates!r})")
    if s.warmup < 0 or (s.policy == "learn_and_drop" and s.name != "sgd" and s.warmup >= cfg.epochs):
        problems.append(f"strategy.warmup must be >= 0 and < epochs (got warmup {s.warmup}, epochs {cfg.epochs})")
    if s.cache.backend not in ("auto", "device", "host", "disk"):
        problems.append(f"strategy.cache.backend must be auto, device, host or disk (got {s.cache.backend!r})")
    if s.cache.dtype not in ("auto", "fp32", "fp16", "bf16", "fp64"):
        problems.append(f"strategy.cache.dtype must be auto, fp32, fp16, bf16 or fp64 (got {s.cache.dtype!r})")
    if s.schedule is not None:
        try:
            bad = not all(int(k) == k and int(v) == v and k >= 1 and v >= 0 for k, v in dict(s.schedule).items())
        except (TypeError, ValueError):
            bad = True
        if bad:
            problems.append(f"strategy.schedule must map epochs (>= 1) to unit counts (>= 0), e.g. '{{2:3,4:6}}' "
                            f"(got {s.schedule})")
    if s.cache.views < 1:
        problems.append(f"strategy.cache.views must be >= 1 (got {s.cache.views})")
    for sub in ("train_subset", "test_subset"):
        v = cfg.data[sub]
        if v is not None and v <= 0:
            problems.append(f"data.{sub} must be > 0 (got {v})")
    if problems:
        raise ConfigError("; ".join(problems))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} asked for, but no CUDA device is available")
    return dev


def config_fingerprint(cfg: DictConfig) -> str:
    """What must match for a checkpoint to be resumed: everything but the run-control keys."""
    d = OmegaConf.to_container(cfg, resolve=True)
    for k in ("resume", "progress", "results_dir", "device", "checkpoint"):
        d.pop(k, None)
    d["data"].pop("root", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def evaluate(chain: Chain, data: ImageData, ctx: RunContext) -> float:
    """Test accuracy (%) of the full chain (tail + head), eval mode."""
    chain.eval()
    correct = torch.zeros((), dtype=torch.long, device=data.test.y.device)
    with torch.no_grad(), ctx.autocast_ctx():
        for s in range(0, len(data.test), ctx.eval_batch_size):
            x = data.normalize(data.test.x[s: s + ctx.eval_batch_size], ctx.dtype)
            if ctx.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = chain(x)
            correct += (logits.argmax(1) == data.test.y[s: s + ctx.eval_batch_size]).sum()
    return 100.0 * correct.item() / len(data.test)


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: str | Path, chain: Chain | None = None,
                 data: ImageData | None = None, experiment: str | None = None):
        """`chain`/`data` may be supplied directly (a user's own network: see fastdrop.api); otherwise
        they are built from the config."""
        validate(cfg)
        self.cfg, self.run_dir, self.experiment = cfg, Path(run_dir), experiment
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._check_results_dir()
        self.device = resolve_device(cfg.device)
        self.dtype = torch.float64 if cfg.precision == "64-true" else torch.float32
        torch.manual_seed(cfg.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        d = cfg.data
        self.data = data if data is not None else load_data(
            d.name, d.root, d.download, d.train_subset, d.test_subset, d.augment, d.image_size)
        if data is not None:
            self.data.train, self.data.test = self.data.train.head(d.train_subset), self.data.test.head(d.test_subset)
        self.data.to(self.device)
        self.model_name = cfg.model.name if chain is None else type(chain).__name__.lower() + "-custom"
        self.chain = chain if chain is not None else build_model(
            cfg.model.name, self.data.num_classes, self.data.in_channels, self.data.image_size, cfg.model.width)
        channels_last = self.device.type == "cuda" if cfg.channels_last is None else cfg.channels_last
        self.chain.to(device=self.device, dtype=self.dtype)
        if channels_last:
            self.chain.to(memory_format=torch.channels_last)
        self.ctx = RunContext(device=self.device, dtype=self.dtype,
                              autocast="bf16" if cfg.precision == "bf16-mixed" else None, seed=cfg.seed,
                              batch_size=cfg.batch_size, eval_batch_size=d.eval_batch_size, run_dir=self.run_dir,
                              channels_last=channels_last)
        sample = self.data.normalize(self.data.train.x[:1], self.dtype)
        self.ctx.unit_macs = unit_macs(self.chain, sample)
        self.strategy = STRATEGIES[cfg.strategy.name](cfg.strategy, self.chain, self.data, self.ctx)
        self.optimizer = torch.optim.SGD(self.chain.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                         weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.history: list[dict] = []
        self.start_epoch = 1
        self.T_s = 0.0
        self.run_id = self._make_run_id()
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    # -- set-up helpers ---------------------------------------------------------------------------
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
        return f"{self.model_name}-{self.data.name}-{c.strategy.name}-s{c.seed}-{stamp}-{uuid.uuid4().hex[:6]}"

    # -- checkpoint -------------------------------------------------------------------------------
    def save_checkpoint(self, epoch: int) -> None:
        state = {
            "fingerprint": config_fingerprint(self.cfg), "epoch": epoch, "run_id": self.run_id,
            "started_at": self.started_at, "T_s": self.T_s, "history": self.history,
            "model": self.chain.state_dict(), "optimizer": self.optimizer.state_dict(),
            "strategy": self.strategy.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None},
        }
        atomic_torch_save(state, self.run_dir / CKPT)

    def load_checkpoint(self) -> None:
        path = self.run_dir / CKPT
        if not path.exists():
            raise ConfigError(f"resume=true but {path} does not exist; pass hydra.run.dir=<the run's directory>")
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as e:
            raise ConfigError(f"checkpoint {path} is unreadable ({type(e).__name__}); start the run again") from None
        if state["fingerprint"] != config_fingerprint(self.cfg):
            raise ConfigError(f"checkpoint {path} was written with different overrides; resume with the same "
                              "overrides as the original run (see its .hydra/overrides.yaml)")
        self.chain.load_state_dict(state["model"])
        self.strategy.load_state_dict(state["strategy"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        self.history, self.T_s, self.run_id = state["history"], state["T_s"], state["run_id"]
        self.started_at = state["started_at"]
        self.start_epoch = state["epoch"] + 1
        log.info("resumed %s after epoch %d (T so far %.1f s)", self.run_id, state["epoch"], self.T_s)

    # -- training ---------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict:
        cfg, strat, dev = self.cfg, self.strategy, self.device
        lr = get_lr(epoch, cfg.optim.lr, cfg.optim.milestones, cfg.optim.gamma) * strat.lr_scale
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        synchronize(dev)
        t0 = time.perf_counter()
        cache_s = strat.begin_epoch(epoch)
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        seen = 0
        bar = _progress(cfg, epoch, len(self.data.train))
        for state, y in strat.batches(epoch):
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
        stats = strat.epoch_stats()  # what ran this epoch, before end_epoch may cut further
        scores = strat.end_epoch(epoch)
        synchronize(dev)
        train_s = time.perf_counter() - t0
        train_loss = loss_sum.item() / max(seen, 1)
        if bar is not None:
            bar.close()
        self.T_s += train_s
        t1 = time.perf_counter()
        acc = evaluate(self.chain, self.data, self.ctx)
        synchronize(dev)
        eval_s = time.perf_counter() - t1
        stats["dropped_units"] = self.chain.names[: strat.n_cut]
        rec = {"epoch": epoch, "lr": lr, "train_time_s": train_s, "cache_time_s": cache_s, "eval_time_s": eval_s,
               "train_loss": train_loss, "test_acc": acc, **stats, **scores}
        return rec

    def fit(self) -> dict:
        if self.cfg.resume:
            self.load_checkpoint()
        status, reason = "completed", ""
        raise_on_sigterm()
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
                if os.environ.get(KILL_ENV) == str(epoch):
                    os.kill(os.getpid(), signal.SIGKILL)
        except Diverged as e:
            status, reason = "diverged", str(e)
        except USER_ERRORS as e:
            status, reason = "failed", str(e)
            raise
        except BaseException as e:
            status, reason = "failed", f"{type(e).__name__}: {e}"
            raise
        finally:
            self.row = self._row(status, reason)
            self.row_path = write_row(self.cfg.results_dir, self.row)
            self.strategy.close()
        return self.row

    # -- the result row ---------------------------------------------------------------------------
    def _row(self, status: str, reason: str) -> dict:
        cfg, h = self.cfg, self.history
        dev = self.device
        return {
            "run_id": self.run_id, "status": status, "status_reason": reason,
            "model": self.model_name, "width": cfg.model.width if self.model_name == cfg.model.name else None, "data": self.data.name, "strategy": cfg.strategy.name,
            "policy": cfg.strategy.policy if cfg.strategy.name != "sgd" else "none",
            "experiment": self.experiment, "tag": cfg.tag,
            "seed": cfg.seed, "epochs": cfg.epochs, "epochs_done": len(h), "batch_size": cfg.batch_size,
            "precision": cfg.precision, "warmup": cfg.strategy.warmup,
            "device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else
            f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)",
            "host": socket.gethostname(), "torch_version": torch.__version__,
            "torchvision_version": torchvision.__version__, "git_commit": git_commit(),
            "T_min": self.T_s / 60.0, "train_time_s": self.T_s,
            "cache_time_s": sum(r["cache_time_s"] for r in h),
            "eval_time_s": sum(r["eval_time_s"] for r in h),
            "A": h[-1]["test_acc"] if h else None,
            "train_images": len(self.data.train), "test_images": len(self.data.test),
            "augment": cfg.data.augment,
            "cache_note": _cache_note(cfg),
            "unit_names": self.chain.names, "unit_macs_per_sample": self.ctx.unit_macs,
            "fwd_macs_full_per_sample": int(sum(self.ctx.unit_macs)),
            "params_total": sum(p.numel() for p in self.chain.parameters()),
            "started_at": self.started_at,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run_dir": str(self.run_dir),
            "config": OmegaConf.to_container(cfg, resolve=True),
            "history": h,
        }


def _cache_note(cfg) -> str:
    if cfg.strategy.name != "dropping" or not cfg.data.augment:
        return ""
    k = cfg.strategy.cache.views
    if k == 1:
        return "head trained on cached un-augmented tail outputs (augmentation stops at the first drop)"
    return f"head trained on {k} cached views per image (plain, flip, {k - 2} random crops)"


def _progress(cfg, epoch: int, total: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}/{cfg.epochs} {cfg.strategy.name}", unit="img", leave=False,
                dynamic_ncols=True, mininterval=1.0)
