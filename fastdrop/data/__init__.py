"""Datasets as whole uint8 tensors, batched by index on the training device.

Every split is loaded once through torchvision's dataset classes (MNIST, CIFAR10, Imagenette) or from
the MNIST subset bundled with the package (`mnist_mini`, the offline default), and kept as a uint8
tensor [N, C, H, W] with int64 labels. Training draws batches by a seeded index permutation and
normalises (and, if configured, augments) each batch on the device, so the hot loop has no per-sample
Python work and no DataLoader workers. The permutation and augmentation generators are re-seeded from
(seed, epoch), so a resumed run sees exactly the batches of an uninterrupted one. A folder dataset too
large for memory streams instead from a memory-mapped file through DataLoader workers
(fastdrop.data.streaming); the training loop reads both kinds through `fetch` and `batches`.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

from .cifar10 import _cifar10
from .cifar10_jpeg import _cifar10_jpeg
from .containers import DataError, ImageData, Split
from .folder import _folder, channel_stats
from .imagenette import _imagenette
from .mnist import MNIST_FILES, _mnist
from .mnist_mini import ASSETS, _mnist_mini
from .streaming import StreamPolicy, StreamSplit

__all__ = ["DataError", "ImageData", "Split", "StreamPolicy", "StreamSplit", "LOADERS", "STATS", "ASSETS", "MNIST_FILES", "load_data"]

STATS = {  # per-channel mean/std of the training sets
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenette": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # what torchvision's weights expect
}


LOADERS: dict[str, tuple[Callable, str]] = {
    "mnist_mini": (_mnist_mini, "mnist"),
    "mnist": (_mnist, "mnist"),
    "cifar10": (_cifar10, "cifar10"),
    "imagenette": (_imagenette, "imagenette"),
    "cifar10_jpeg": (_cifar10_jpeg, "cifar10"),
    "folder": (_folder, "train"),  # your own ImageFolder tree; "train": mean/std of its training split
}


def load_data(name: str, root: str = "data", download: bool = False, train_subset: int | None = None,
              test_subset: int | None = None, augment: bool = False, image_size: int | None = None,
              subset_seed: int = 0, memory_budget_gb: float | None = None, stats: str | None = None,
              stream: StreamPolicy | None = None) -> ImageData:
    """`stats` overrides the dataset's normalisation (a STATS key, or "train" for the training split's).
    `stream`: when the folder datasets stream from a memory-mapped file (fastdrop.data.streaming); None
    keeps every split in memory."""
    if name not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(LOADERS)}")
    fn, own_stats = LOADERS[name]
    options = {"size": image_size or None, "memory_budget_gb": memory_budget_gb, "stream": stream}
    takes = inspect.signature(fn).parameters
    kw = {k: v for k, v in options.items() if k in takes and v is not None}
    if stream is not None and stream.stream and "stream" not in takes:
        raise DataError(f"data.stream=true needs a folder (JPEG) dataset; {name} is loaded whole by torchvision")
    r = Path(root).expanduser()
    train = fn(r, download, True, **kw).sample(train_subset, subset_seed)
    test = fn(r, download, False, **kw).sample(test_subset, subset_seed)
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"{name}: empty split after subsetting (train {len(train)}, test {len(test)})")
    stats = stats or own_stats
    mean, std = channel_stats(train) if stats == "train" else STATS[stats]
    classes = train.classes
    return ImageData(name, train, test, mean, std, num_classes=len(classes) if classes else 10, augment=augment,
                     classes=classes)
