"""Everything a run builds before its first epoch, in the order the trainer calls it: the world (DDP)
and the run directory's lock, the device and seeds, the data and its warnings, the chain on its device,
the strategy's context, the optimiser and the run id. Each step is a function of what came before, so
the trainer's constructor reads as the list of them."""
from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime
from pathlib import Path

import torch

from ..data import DATASETS, ImageData, StreamPolicy, load_data
from ..data.subset import class_counts
from ..errors import ConfigError
from ..files import RUNS
from ..models import Chain, apply_weights, build, chain_of, default_name
from ..models.weights import is_torchvision_name
from ..strategies import RunContext
from . import distributed
from .distributed import World
from .lock import acquire_for_world

log = logging.getLogger("fastdrop")


def open_run(cfg, run_dir: Path) -> tuple[World, bool]:
    """The world (torchrun's process group, or one process) and the run directory, locked before
    anything in it is written; the results folder must be writable. True where this process locked."""
    world = distributed.init(cfg.device, cfg.dist.backend, cfg.dist.timeout_min)
    locked = acquire_for_world(run_dir, world)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_results_dir(cfg.results_dir)
    return world, locked


def check_results_dir(results_dir: str) -> None:
    runs = Path(results_dir) / RUNS
    try:
        runs.mkdir(parents=True, exist_ok=True)
        probe = runs / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"results_dir {results_dir!r} is not writable ({e.strerror or e})") from None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} asked for, but no CUDA device is available")
    return dev


def device_and_dtype(cfg, world: World) -> tuple[torch.device, torch.dtype]:
    """This rank's device and the compute dtype; seeds torch and sets the fast CUDA kernels."""
    device = world.device_for(resolve_device(cfg.device))
    torch.manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device, torch.float64 if cfg.precision == "64-true" else torch.float32


def prepare_data(cfg, data: ImageData | None, experiment: str | None, warn) -> tuple[ImageData, dict]:
    """The configured splits (or the user's `data`, subset alike) and their class counts; `warn(msg)` gets
    what a user must see: a paper preset on a subset it was not written for, a split with under two classes."""
    d = cfg.data
    if data is None:
        data = load_data(d.name, d.root, d.download, d.train_subset, d.test_subset, d.augment, d.image_size,
                         d.subset_seed, d.memory_budget_gb,
                         stats="imagenet" if is_torchvision_name(cfg.model.weights) else None,
                         stream=StreamPolicy(d.stream, d.memory_budget_gb, d.workers))
    else:
        data.train = data.train.sample(d.train_subset, d.subset_seed)
        data.test = data.test.sample(d.test_subset, d.subset_seed)
    counts = {k: class_counts(getattr(data, k).y, data.num_classes) for k in ("train", "test")}
    preset_warning = DATASETS.attr(data.name, "paper_preset_warning")
    if (experiment or "").startswith("paper_") and preset_warning:
        warn(f"experiment={experiment} {preset_warning}")
    for k, c in counts.items():
        if sum(n > 0 for n in c) < 2:
            warn(f"the {k} split holds fewer than two classes ({c}): its accuracy and loss mean nothing")
    n, unseen = len(data.train), sum(c == 0 for c in counts["train"])
    if unseen:
        warn(f"the train split holds {n} images for {data.num_classes} classes: {unseen} classes have no "
             f"training image (data.train_subset={d.train_subset})")
    if cfg.batch_size >= n:
        warn(f"batch_size {cfg.batch_size} >= the {n} training images: one optimiser step per epoch")
    return data, counts


def build_chain(cfg, chain, name: str | None, data: ImageData) -> tuple[Chain, str, dict]:
    """The configured network, or the user's own `chain` (row name `name`), with the weights applied."""
    if chain is None:
        built, info = build(cfg.model, data.num_classes, data.in_channels, data.image_size)
        return built, cfg.model.name, info
    built = chain_of(chain)
    info = {"stem": None, **apply_weights(chain, built, cfg.model.weights, new_classifier=cfg.model.new_classifier)}
    return built, name or default_name(chain, built), info


def place_chain(cfg, chain: Chain, world: World, device: torch.device, dtype: torch.dtype) -> tuple[Chain, bool]:
    """The chain on its device and dtype (SyncBN under dist.sync_bn); per-rank dropout seeds."""
    chain = world.sync_bn(chain, cfg.dist.sync_bn)
    torch.manual_seed(cfg.seed + world.rank)  # dropout masks per rank (the weights are rank 0's)
    channels_last = device.type == "cuda" if cfg.channels_last is None else cfg.channels_last
    chain.to(device=device, dtype=dtype)
    if channels_last:
        chain.to(memory_format=torch.channels_last)
    return chain, channels_last


def run_context(cfg, world: World, device: torch.device, dtype: torch.dtype, run_dir: Path,
                channels_last: bool) -> RunContext:
    return RunContext(device=device, dtype=dtype, autocast="bf16" if cfg.precision == "bf16-mixed" else None,
                      seed=cfg.seed, batch_size=cfg.batch_size // world.size,
                      eval_batch_size=cfg.data.eval_batch_size, run_dir=run_dir, channels_last=channels_last,
                      rank=world.rank, world_size=world.size, epochs=cfg.epochs)


def optimizer(cfg, strategy) -> torch.optim.Optimizer:
    o = cfg.optim
    return torch.optim.SGD(strategy.param_groups(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                           nesterov=o.nesterov)


def run_id(cfg, model_name: str, data_name: str, world: World) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    rid = f"{model_name}-{data_name}-{cfg.strategy.name}-s{cfg.seed}-{stamp}-{uuid.uuid4().hex[:6]}"
    return world.gather(rid)[0]  # rank 0's
