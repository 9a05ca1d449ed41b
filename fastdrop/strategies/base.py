"""What every strategy shares: the hooks the trainer calls, scoring, and the cut decisions.

The trainer only ever calls `begin_epoch`, `batches`, `forward`, `after_backward`, `end_epoch` and
`epoch_stats`; a strategy differs from another only in where its batches come from (`first_run_unit`:
the first unit its forward pass runs, 0 unless states come from a cache). `n_cut` counts the leading
conv units cut (frozen or dropped): the units in [first_run_unit, n_cut) run frozen (no grad, eval-mode
BN), the rest train. What to cut is the cut policy's call (fastdrop.policies, by
`strategy.policy`); its decision and reason go into the epoch's record.
"""
from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from ..data import ImageData
from ..models import Chain
from ..policies import Observation, make_policy
from ..policies import rules
from ..policies.scores import ScoreAccumulator

log = logging.getLogger(__name__)


def synchronize(device: torch.device) -> None:
    """Wait for the GPU, so wall-clock timings cover the work they claim to."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class RunContext:
    """What a strategy needs to know about the run, built once by the trainer."""
    device: torch.device
    dtype: torch.dtype = torch.float32          # parameter / input dtype (float64 under 64-true)
    autocast: str | None = None                 # "bf16" for bf16-mixed
    seed: int = 0
    batch_size: int = 256
    eval_batch_size: int = 1024
    run_dir: Path = Path(".")
    channels_last: bool = False
    unit_macs: list = field(default_factory=list)  # forward MACs per sample, per unit
    epochs: int = 0                             # the run's length in epochs
    rank: int = 0                               # data-parallel rank and world size (fastdrop.run.distributed)
    world_size: int = 1
    loop_augments: bool = False                 # a loop of its own augments its images (the engine's augmented=)

    @property
    def cache_dir(self) -> Path:
        """Where disk feature caches go: one folder per rank, each holding only that rank's rows."""
        d = self.run_dir / "feature_cache"
        return d / f"rank{self.rank}" if self.world_size > 1 else d

    def inputs(self, data: ImageData, images: torch.Tensor, transform=None) -> torch.Tensor:
        """uint8 `images` as the network takes them: normalised to the run's dtype, then `transform`ed
        (an augmentation, a cached view), in the run's memory format. Training, evaluation and probes alike."""
        x = data.normalize(images, self.dtype)
        if transform is not None:
            x = transform(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast_ctx(self):
        if self.autocast == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def generator(self, epoch: int, stream: int, device=None) -> torch.Generator:
        # One independent, reproducible stream per (seed, epoch, purpose): resumed runs see the same batches.
        g = torch.Generator(device=device or "cpu")
        # Stream 0 (the epoch permutation) is the same on every rank, the others (augmentation) per rank.
        rank = self.rank * 1_000_000_007 if stream else 0
        g.manual_seed((self.seed * 1_000_003 + epoch * 101 + stream + rank) % (2 ** 63))
        return g


class Strategy:
    name = "base"
    cuts = True  # whether the policy's decisions are applied

    def __init__(self, cfg, chain: Chain, data: ImageData, ctx: RunContext):
        self.cfg, self.chain, self.data, self.ctx = cfg, chain, data, ctx
        self.n_cut = 0
        self.cut_history: list[tuple[int, int]] = []  # (epoch, n_cut after it)
        self.policy = make_policy(cfg)
        # sgd accumulates them for the score figures; a cutting strategy only for a policy that decides on them
        self.scorer = self._make_scorer() if cfg.scores and (self.policy.uses_scores or not self.cuts) else None
        self.probe = None
        if self.cuts and self.policy.uses_drift:
            from ..policies.drift import FeatureProbe  # the policy's own measurement: off for every other policy
            self.probe = FeatureProbe(chain, data, ctx, cfg.drift_probe)
            self.probe.measure(0)  # the reference copy: epoch 1's drift is measured from the start weights
        # (state, start) -> state over the trained units; the trainer puts a DDP wrapper here under torchrun
        self.train_runner = self.chain.run

    # -- scoring ----------------------------------------------------------------------------------
    def _make_scorer(self):
        return ScoreAccumulator([u.conv_weights() for u in self.chain.units[self.n_cut: self.chain.n_conv]])

    @property
    def sets_unit_lrs(self) -> bool:
        """Whether the policy gives each unit its own learning rate (the optimiser needs a group per unit)."""
        return self.cuts and self.policy.sets_unit_lrs

    def param_groups(self) -> list[dict]:
        """The optimiser's parameter groups: one for the whole chain, or one per unit when the policy sets
        per-unit learning rates (FreezeOut)."""
        if self.sets_unit_lrs:
            return self.chain.unit_groups()
        return [{"params": list(self.chain.parameters())}]

    def unit_lrs(self, progress: float, base_lr: float, epoch_lr: float | None = None) -> list[float] | None:
        """Per-unit learning rates before a step (one per param group), or None: the epoch's rate holds."""
        if not self.sets_unit_lrs:
            return None
        return self.policy.unit_lrs(progress, base_lr, len(self.chain.units), epoch_lr)

    def after_backward(self) -> None:
        if self.scorer is not None:
            self.scorer.accumulate()

    # -- data -------------------------------------------------------------------------------------
    def _image_state(self, images: torch.Tensor, gen: torch.Generator | None) -> tuple:
        augment = (lambda x: self.data.random_crop_flip(x, gen)) if self.data.augment and gen is not None else None
        return (self.ctx.inputs(self.data, images, augment),)

    def _permutation(self, epoch: int) -> torch.Tensor:
        return torch.randperm(len(self.data.train), generator=self.ctx.generator(epoch, 0))

    @property
    def growth(self) -> int:
        """Batch growth factor for the current head (1 unless strategy.grow_batch)."""
        if not self.cfg.grow_batch or not self.n_cut:
            return 1
        macs = self.ctx.unit_macs
        work = lambda k: sum(macs[k:]) + rules.backward_work(macs, k)  # noqa: E731  (a head from unit k)
        return rules.batch_growth(work(0), work(self.n_cut), self.ctx.batch_size,
                                   self.cfg.max_batch_size // self.ctx.world_size)  # a cap on the global batch

    @property
    def lr_scale(self) -> float:
        return float(self.growth)  # linear scaling rule for the grown batch

    def _batch_slices(self, n: int) -> Iterator[slice]:
        bs = self.ctx.batch_size * self.growth
        for i in range(0, n, bs):
            if n - i >= 2:  # a 1-sample batch would break batch norm in train mode
                yield slice(i, min(i + bs, n))

    def batches(self, epoch: int) -> Iterator[tuple[tuple, torch.Tensor]]:
        perm = self._permutation(epoch).to(self.data.train.y.device)
        gen = self.ctx.generator(epoch, 1, device=self.ctx.device) if self.data.augment else None
        idx = [perm[s] for s in self._batch_slices(len(perm))]
        for i, images in zip(idx, self.data.train.batches(idx)):  # read ahead by workers when streaming
            yield self._image_state(images, gen), self.data.train.y[i]

    # -- hooks ------------------------------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> float:
        """Prepare the epoch's inputs (`_prepare`: seconds spent building caches), then training mode for
        the trained units and eval mode (frozen BN statistics) for the cut units still run."""
        if self.scorer is not None:
            self.scorer.reset()
        if epoch == 1 and self.cuts:  # a policy's "epoch 0" decision (a schedule may cut before training)
            n = self.policy.before_training(self.n_cut, self.chain.n_conv)
            if n > self.n_cut:
                log.info("before epoch 1: cutting %s (%s, %s)", ", ".join(self.chain.names[:n]), self.name,
                         self.policy.name)
                self.cut(n, 0)
        seconds = self._prepare(epoch)
        self.chain.train()
        for u in self.chain.units[self.first_run_unit:self.n_cut]:
            u.eval()
        return seconds

    def _prepare(self, epoch: int) -> float:
        return 0.0

    def forward(self, state: tuple) -> torch.Tensor:
        if self.first_run_unit < self.n_cut:  # cut units still in the forward pass: no graph, no backward
            with torch.no_grad():
                state = self.chain.run(state, self.first_run_unit, self.n_cut)
        return self.train_runner(state, self.n_cut)[0]

    @property
    def augmented(self) -> bool:
        """Whether training sees augmented images: fastdrop's crop + flip, a dataset that streams (its
        transform may be random; one known to be deterministic is read into memory instead), or a loop of
        its own that says it augments."""
        from ..data.dataset_input import DatasetSplit
        if self.ctx.loop_augments:
            return True
        try:
            augment, train = self.data.augment, self.data.train
        except (AttributeError, ValueError):  # the engine without training images (NoData refuses every read)
            return False
        return bool(augment) or isinstance(train, DatasetSplit)

    def end_epoch(self, epoch: int, train_loss: float = math.nan, lr: float = math.nan) -> dict:
        """Scores of the epoch (Eqs. 1-3) and the policy's decision on them, with its trace. `lr`: the
        epoch's scheduled learning rate (NaN: unknown)."""
        out, p, g, steps = {}, [], [], 0
        names = self.chain.names[self.n_cut: self.chain.n_conv]
        if self.scorer is not None:
            p, a = self.scorer.finish()
            g, steps = self.scorer.last_abs_s, self.scorer.steps
            out["scores"] = dict(zip(names, p))
            out["scores_std"] = dict(zip(names, rules.standardise(p)))
            out["aapd"] = dict(zip(names, a))
        if self.cuts and (self.scorer is not None or not self.policy.uses_scores):
            drift = self.probe.measure(self.n_cut) if self.probe is not None else []
            if drift:
                out["drift"] = dict(zip(names, drift))
            d = self.policy.decide(Observation(epoch, list(p), list(names), self.n_cut, train_loss,
                                               self.data.num_classes, steps, self.ctx.epochs, list(g),
                                               drift, lr, self.augmented))
            out.update(d.record())
            if d.warning:
                out["warnings"] = [d.warning]
            log.info("epoch %d: decision %s: %s", epoch, d.decision, d.decision_reason)
            if d.n_cut > self.n_cut:
                self.cut(d.n_cut, epoch)
        return out

    def cut(self, n: int, epoch: int | None = None) -> None:
        for p in self.chain.unit_parameters(0, n):
            p.requires_grad_(False)
            p.grad = None
        self.n_cut = n
        if epoch is not None:
            self.cut_history.append((epoch, n))
        if self.scorer is not None:
            self.scorer = self._make_scorer()

    # -- reporting --------------------------------------------------------------------------------
    @property
    def first_run_unit(self) -> int:
        """Index of the first unit executed in the training forward pass."""
        return 0

    def epoch_stats(self) -> dict:
        return {
            "batch_size": self.ctx.batch_size * self.growth,
            "dropped_units": self.chain.names[: self.n_cut],
            "trained_params": sum(p.numel() for p in self.chain.unit_parameters(self.n_cut)),
            "fwd_macs_per_sample": int(sum(self.ctx.unit_macs[self.first_run_unit:])),
        }

    # -- persistence ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        sd = {"n_cut": self.n_cut, "cut_history": self.cut_history, "policy": self.policy.state_dict()}
        if self.probe is not None:
            sd["probe"] = self.probe.state_dict()
        return sd

    def load_state_dict(self, sd: dict) -> None:
        self.policy.load_state_dict(sd.get("policy", sd))  # older checkpoints kept the paper's state flat
        if self.probe is not None and "probe" in sd:
            self.probe.load_state_dict(sd["probe"])
        for epoch, n in sd["cut_history"]:
            self.cut(n, epoch)

    @property
    def policy_name(self) -> str:
        """The policy the row names: the configured one if this strategy applies cuts, else none."""
        return self.cfg.policy if self.cuts else "none"

    @classmethod
    def cache_note(cls, cfg, augment: bool) -> str:
        """What the row must say about how cached inputs change training (Dropping: augmentation)."""
        return ""

    def close(self) -> None:
        pass
