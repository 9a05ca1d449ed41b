"""Datasets as whole uint8 tensors, batched by index on the training device.

Every split is loaded once through torchvision's dataset classes (MNIST, CIFAR10, Imagenette) or from
the MNIST subset bundled with the package (`mnist_mini`, the offline default), and kept as a uint8
tensor [N, C, H, W] with int64 labels. Training draws batches by a seeded index permutation and
normalises (and, if configured, augments) each batch on the device, so the hot loop has no per-sample
Python work and no DataLoader workers. The permutation and augmentation generators are re-seeded from
(seed, epoch), so a resumed run sees exactly the batches of an uninterrupted one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .cifar10 import _cifar10
from .cifar10_jpeg import _cifar10_jpeg
from .containers import DataError, ImageData, Split
from .imagenette import _imagenette
from .mnist import MNIST_FILES, _mnist
from .mnist_mini import ASSETS, _mnist_mini

__all__ = ["DataError", "ImageData", "Split", "LOADERS", "STATS", "ASSETS", "MNIST_FILES", "load_data"]

STATS = {  # per-channel mean/std of the training sets
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenette": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


LOADERS: dict[str, tuple[Callable, str]] = {
    "mnist_mini": (_mnist_mini, "mnist"),
    "mnist": (_mnist, "mnist"),
    "cifar10": (_cifar10, "cifar10"),
    "imagenette": (_imagenette, "imagenette"),
    "cifar10_jpeg": (_cifar10_jpeg, "cifar10"),
}


def load_data(name: str, root: str = "data", download: bool = False, train_subset: int | None = None,
              test_subset: int | None = None, augment: bool = False, image_size: int | None = None,
              subset_seed: int = 0) -> ImageData:
    if name not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(LOADERS)}")
    fn, stats = LOADERS[name]
    kw = {"size": image_size} if name == "imagenette" and image_size else {}
    r = Path(root).expanduser()
    train = fn(r, download, True, **kw).sample(train_subset, subset_seed)
    test = fn(r, download, False, **kw).sample(test_subset, subset_seed)
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"{name}: empty split after subsetting (train {len(train)}, test {len(test)})")
    mean, std = STATS[stats]
    return ImageData(name, train, test, mean, std, num_classes=10, augment=augment)
