"""The reference loop: the fastest plain SGD a user would write by hand, timed beside fastdrop's sgd.

It trains the same network module (the torchvision VGG/ResNet that fastdrop's chain wraps, built anew
with the same seed), on the same uint8 split on the device, with the same optimiser settings, batch
size, randperm batches and per-batch normalisation, through `model(x)` instead of the chain. Its
step time is the floor fastdrop's sgd baseline is held to (bench prints the ratio): any overhead of
the chain, the strategy hooks or the bookkeeping shows up as sgd / reference > 1.

Two measurements: whole epochs after each sgd repeat (`reference_epoch_times`, comparable with the rows'
epoch times but minutes apart from them), and `alternated_blocks`, blocks of steps of each loop taken in
turn in one process, so the machine's drift (10-25 % between runs here) falls on both sides alike.
"""
from __future__ import annotations

import statistics
import time
from itertools import islice

import torch

from ..models import build_torchvision, resolve_stem
from ..strategies.base import synchronize
from .scoring import time_steps


class ReferenceLoop:
    """The hand-written loop's model, optimiser and data on the device."""

    def __init__(self, cfg, data, device: torch.device):
        torch.manual_seed(cfg.seed)
        small = resolve_stem(cfg.model.stem, cfg.model.weights, data.image_size)
        self.model = build_torchvision(cfg.model.name, data.num_classes, data.in_channels, data.image_size,
                                       cfg.model.width, small).to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                   weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.x, self.y = data.train.x.to(device), data.train.y.to(device)
        self.mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
        self.device, self.bs = device, cfg.batch_size
        self.model.train()

    def run(self, steps: int | None = None) -> float:
        """Seconds for one epoch's steps (or its first `steps`), a fresh randperm as an epoch starts."""
        n = len(self.y)
        synchronize(self.device)
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=self.device)
        for i in list(range(0, n - 1, self.bs))[:steps]:
            idx = perm[i:i + self.bs]
            x = (self.x[idx].float() / 255.0 - self.mean) / self.std
            loss = self.loss_fn(self.model(x), self.y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        synchronize(self.device)
        return time.perf_counter() - t0


def reference_epoch_times(cfg, data, device: torch.device, epochs: int) -> list[float]:
    """Seconds per training epoch of the hand-written loop (no evaluation, no scores, no checkpoints)."""
    loop = ReferenceLoop(cfg, data, device)
    return [loop.run() for _ in range(epochs)]


def alternated_blocks(trainer, steps: int = 8, repeats: int = 7) -> dict:
    """fastdrop's sgd (the trainer's strategy, no scores) against the hand-written loop, in one process:
    `repeats` pairs of blocks of `steps` steps, one loop then the other, each drawing its batches as its
    own epoch does. The ratio is the median of the pairs' ratios, with their range."""
    loop, strat = ReferenceLoop(trainer.cfg, trainer.data, trainer.device), trainer.strategy
    strat.begin_epoch(1)

    def ours() -> float:
        return time_steps(trainer, islice(strat.batches(1), steps), score=False)

    ours(), loop.run(steps)  # warm-up: first-call allocations on both sides
    pairs = [(ours(), loop.run(steps)) for _ in range(repeats)]
    ratios = sorted(a / b for a, b in pairs)
    return {"blocks": repeats, "steps_per_block": steps, "sgd_step_s": statistics.median(a for a, _ in pairs) / steps,
            "reference_step_s": statistics.median(b for _, b in pairs) / steps,
            "sgd_over_reference": statistics.median(ratios), "ratio_range": (ratios[0], ratios[-1])}
