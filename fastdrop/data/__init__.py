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

from ..registry import DATASETS
# Imported in the order the report lists datasets; each module registers its loader.
from . import mnist, mnist_mini, cifar10, cifar10_jpeg, imagenette  # noqa: F401,E401
from .containers import DataError, ImageData, Split
from .mnist import MNIST_FILES
from .mnist_mini import ASSETS

__all__ = ["DataError", "ImageData", "Split", "DATASETS", "LOADERS", "STATS", "ASSETS", "MNIST_FILES", "load_data"]

LOADERS = DATASETS  # older name
# Normalisation statistics by dataset name (each loader registers its own `stats`).
STATS = {name: DATASETS.attr(name, "stats") for name in DATASETS}


def load_data(name: str, root: str = "data", download: bool = False, train_subset: int | None = None,
              test_subset: int | None = None, augment: bool = False, image_size: int | None = None,
              subset_seed: int = 0) -> ImageData:
    """A registered dataset as uint8 splits, subsampled (seeded, class-balanced) when asked. A loader is
    `fn(root, download, train, [size]) -> Split`, registered with its `stats` (mean, std), `num_classes`
    (default 10), `sized` (accepts `size=image_size`) and `paper` (the paper's dataset it stands for)."""
    fn = DATASETS.get_or_fail(name, DataError)
    kw = {"size": image_size} if DATASETS.attr(name, "sized") and image_size else {}
    r = Path(root).expanduser()
    train = fn(r, download, True, **kw).sample(train_subset, subset_seed)
    test = fn(r, download, False, **kw).sample(test_subset, subset_seed)
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"{name}: empty split after subsetting (train {len(train)}, test {len(test)})")
    mean, std = DATASETS.attr(name, "stats")
    return ImageData(name, train, test, mean, std, num_classes=DATASETS.attr(name, "num_classes", 10),
                     augment=augment)
