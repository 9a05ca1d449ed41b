"""Data-parallel runs under torchrun: `torchrun --nproc_per_node=N -m fastdrop run ...` (DDP).

Rows to ranks: the training split is cut once, by a permutation seeded with `seed` alone, into N equal
shards (the n mod N rows left over are not trained on; the row's `train_images` says how many were).
Rank r keeps shard r for the whole run and each epoch permutes it with the same seeded generator a single
process uses, so it trains on the same rows every epoch and its feature cache (Dropping) holds only
those n/N rows: cache memory per GPU falls with N, and a resumed run rebuilds the same caches.

What N ranks with per-rank batch b = B/N compute: DDP averages the gradients of the N per-rank batch
means, which is the gradient of the mean over the global batch of B, so the run follows one process with
batch B whose epoch order is `equivalent_order` (global batch i = the i-th batch of every rank, rank 0's
first). That is exact (to float rounding) for networks without train-mode batch norm. With BN, each rank
normalises with its own batch's statistics (torch's default under DDP, a "ghost batch" of b), so the run
matches one process with batch B only up to BN statistics; `dist.sync_bn=true` (GPU only, torch's
SyncBatchNorm) computes them over the global batch and restores the equivalence. Running statistics are
rank 0's, broadcast to all ranks after every epoch, so evaluation, cuts and caches see one model.
Augmentation draws its crops per rank (its own seeded stream), so augmented runs match only in law.

Learn&Drop: the score accumulator reads `.grad` after `backward()`, when DDP has already all-reduced it,
so every rank sees the gradients of the global batch and computes the same scores and cut; `World.agree`
checks that (all-gather of the decision) and stops the run with a clear error otherwise.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError, user_error

log = logging.getLogger("fastdrop")

DDP_BACKENDS = ("auto", "nccl", "gloo")


@user_error
class RanksDisagree(RuntimeError):
    """Ranks that should hold the same value (a cut decision, a model) do not: stop, never diverge."""


@dataclass(frozen=True)
class World:
    """This process's place among the ranks, and the one object through which the run talks to the
    others: every collective is a method that does nothing in a single process."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""  # "" for a single process

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- set-up ------------------------------------------------------------------------------------
    def device_for(self, device: torch.device) -> torch.device:
        """One GPU per rank: cuda:LOCAL_RANK (a bare `cuda` or `auto` means this rank's own device)."""
        if self.enabled and device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        return device

    def shard_data(self, data, cfg, device: torch.device) -> None:
        """This rank's fixed shard of the training split and its share of the test split (in place)."""
        if not self.enabled:
            return
        if cfg.batch_size % self.size:
            raise ConfigError(f"batch_size {cfg.batch_size} is the global batch and must be divisible by the "
                              f"{self.size} processes (per-rank batch = batch_size / world size)")
        if cfg.dist.sync_bn and device.type != "cuda":
            raise ConfigError("dist.sync_bn=true needs GPUs (torch's SyncBatchNorm has no CPU kernel)")
        tr, te = data.train, data.test
        if len(tr) < self.size:
            raise ConfigError(f"{len(tr)} training images cannot be shared by {self.size} processes")
        data.train = tr.take(shard(len(tr), self, cfg.seed))
        data.test = te.take(torch.arange(self.rank, len(te), self.size))
        if len(tr) % self.size and self.is_main:
            log.warning("%d training images left out so that the %d ranks hold equal shards", len(tr) % self.size,
                        self.size)

    def sync_bn(self, chain: nn.Module, wanted: bool) -> nn.Module:
        """SyncBatchNorm over the global batch (dist.sync_bn=true, GPUs only)."""
        return nn.SyncBatchNorm.convert_sync_batchnorm(chain) if wanted and self.enabled else chain

    def rewrap(self, strategy, chain, device: torch.device, wrapped_at: int | None) -> int | None:
        """Under torchrun: a DDP wrapper over the units that train now, rebuilt after a cut (DDP fixes its
        parameter set when built). Returns the n_cut the wrapper is built for."""
        if not self.enabled or wrapped_at == strategy.n_cut:
            return wrapped_at
        strategy.train_runner = chain.run  # drop the old wrapper (and its hooks) first
        ids = [device.index] if device.type == "cuda" else None
        # broadcast_buffers=False: BN statistics are broadcast once per epoch (broadcast_buffers below),
        # not before every step; rank 0's trajectory is the same either way.
        strategy.train_runner = nn.parallel.DistributedDataParallel(_Head(chain), device_ids=ids,
                                                                    broadcast_buffers=False)
        return strategy.n_cut

    # -- collectives -------------------------------------------------------------------------------
    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def all_max(self, x: float) -> float:
        """The largest value over the ranks (T is the slowest rank's training time)."""
        if not self.enabled:
            return x
        t = torch.tensor([x], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def gather(self, obj) -> list:
        if not self.enabled:
            return [obj]
        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def agree(self, value, what: str) -> None:
        """Raise RanksDisagree unless every rank holds the same `value` (a collective: all ranks call it)."""
        values = self.gather(value)
        if any(v != values[0] for v in values[1:]):
            listing = "; ".join(f"rank {r}: {v}" for r, v in enumerate(values))
            raise RanksDisagree(f"ranks disagree on {what} ({listing}); the run is stopped rather than "
                                "left to diverge (different code, data or config on some rank?)")

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Rank 0's BN running statistics on every rank (train-mode BN updates them per rank)."""
        if self.enabled:
            for b in module.buffers():
                dist.broadcast(b, 0)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")


agree = World.agree  # distributed.agree(world, value, what), as the tests call it


def env_world_size() -> int:
    _adopt_submitit_tasks()
    return int(os.environ.get("WORLD_SIZE", "1"))


def _adopt_submitit_tasks() -> None:
    """Inside a Slurm job that submitit started with several tasks (hydra/launcher=slurm_ddp: one task
    per GPU, no torchrun), derive torchrun's variables from Slurm's, so each task is one DDP rank."""
    if "WORLD_SIZE" in os.environ or os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return
    if int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # we pick cuda:LOCAL_RANK


def init(device_name: str = "auto", backend: str = "auto", timeout_min: float = 30.0) -> World:
    """The process group torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR/PORT); a single process when WORLD_SIZE is unset or 1. Idempotent."""
    size = env_world_size()
    if size <= 1:
        return World()
    if backend not in DDP_BACKENDS:
        raise ValueError(f"dist.backend must be one of {', '.join(DDP_BACKENDS)} (got {backend!r})")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "auto":
        cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
        backend = "nccl" if cuda else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)  # before any collective: NCCL uses the current device
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(minutes=timeout_min))
    if rank != 0:  # one voice on the console; warnings and errors still come from every rank
        log.setLevel(logging.WARNING)
    return World(rank, size, local, dist.get_backend())


def shard(n: int, world: World, seed: int) -> torch.Tensor:
    """Sorted indices of the training rows rank `world.rank` owns for the whole run."""
    if not world.enabled:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed * 7_919 + 17)
    m = n // world.size
    perm = torch.randperm(n, generator=g)
    return perm[world.rank * m: (world.rank + 1) * m].sort().values


def equivalent_order(shards: list[torch.Tensor], local_perm: torch.Tensor, per_rank_batch: int) -> torch.Tensor:
    """The epoch order one process with batch N*b must use to reproduce an N-rank epoch in which every
    rank permutes its shard by `local_perm` (positions) and takes batches of b."""
    parts = []
    for s in range(0, len(local_perm), per_rank_batch):
        pos = local_perm[s: s + per_rank_batch]
        parts += [sh[pos] for sh in shards]
    return torch.cat(parts)


# -- the model -----------------------------------------------------------------------------------

class _Head(nn.Module):
    """chain.run(state, start) as a module, so DDP can wrap the trained part of a chain."""

    def __init__(self, chain):
        super().__init__()
        self.chain = chain

    def forward(self, state: tuple, start: int) -> tuple:
        return self.chain.run(state, start)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
