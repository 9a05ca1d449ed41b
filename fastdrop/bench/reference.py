"""The reference loop: the fastest plain SGD a user would write by hand, timed beside fastdrop's sgd.

It trains the same network module (the torchvision VGG/ResNet that fastdrop's chain wraps, built anew
with the same seed), on the same uint8 split on the device, with the same optimiser settings, batch
size, randperm batches and per-batch normalisation, through `model(x)` instead of the chain. Its
epoch time is the floor fastdrop's sgd baseline is held to (bench prints the ratio): any overhead of
the chain, the strategy hooks or the bookkeeping shows up as sgd / reference > 1.
"""
from __future__ import annotations

import time

import torch

from ..models import build_torchvision, resolve_stem
from ..strategies.base import synchronize


def reference_epoch_times(cfg, data, device: torch.device, epochs: int) -> list[float]:
    """Seconds per training epoch of the hand-written loop (no evaluation, no scores, no checkpoints)."""
    torch.manual_seed(cfg.seed)
    small = resolve_stem(cfg.model.stem, cfg.model.weights, data.image_size)
    model = build_torchvision(cfg.model.name, data.num_classes, data.in_channels, data.image_size,
                              cfg.model.width, small).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                          weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
    loss_fn = torch.nn.CrossEntropyLoss()
    x_all, y_all = data.train.x.to(device), data.train.y.to(device)
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    n, bs, times = len(y_all), cfg.batch_size, []
    model.train()
    for _ in range(epochs):
        synchronize(device)
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=device)
        for i in range(0, n - 1, bs):
            idx = perm[i:i + bs]
            x = (x_all[idx].float() / 255.0 - mean) / std
            loss = loss_fn(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times
