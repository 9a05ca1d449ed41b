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

from ..registry import DATASETS
# Imported in the order the report lists datasets; each module registers its loader.
from . import mnist, mnist_mini, cifar10, cifar10_jpeg, imagenette, folder  # noqa: F401,E401
from .containers import DataError, ImageData, Split
from .folder import channel_stats
from .imagenette import IMAGENETTE_STATS
from .mnist import MNIST_FILES
from .mnist_mini import ASSETS
from .streaming import StreamPolicy, StreamSplit

__all__ = ["DataError", "ImageData", "Split", "StreamPolicy", "StreamSplit", "DATASETS", "LOADERS", "STATS", "ASSETS",
           "MNIST_FILES", "load_data"]

LOADERS = DATASETS  # older name
# Normalisation statistics by name: each dataset's own (registered beside its loader), and ImageNet's,
# which torchvision's weights expect.
STATS = {name: DATASETS.attr(name, "stats") for name in DATASETS if not isinstance(DATASETS.attr(name, "stats"), str)}
STATS["imagenet"] = IMAGENETTE_STATS


def load_data(name: str, root: str = "data", download: bool = False, train_subset: int | None = None,
              test_subset: int | None = None, augment: bool = False, image_size: int | None = None,
              subset_seed: int = 0, memory_budget_gb: float | None = None, stats: str | None = None,
              stream: StreamPolicy | None = None) -> ImageData:
    """A registered dataset as uint8 splits, subsampled (seeded, class-balanced) when asked. A loader is
    `fn(root, download, train, [size], [memory_budget_gb], [stream]) -> Split` (it gets the options it
    names), registered with its `stats` ((mean, std), or "train" for the training split's own), `paper`
    (the paper's dataset it stands for) and `num_classes` unless its splits name their classes. `stats`
    overrides the normalisation (a STATS key, or "train"). `stream`: when the folder datasets stream from
    a memory-mapped file (fastdrop.data.streaming); None keeps every split in memory."""
    fn = DATASETS.get_or_fail(name, DataError)
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
    chosen = stats or DATASETS.attr(name, "stats")
    mean, std = channel_stats(train) if chosen == "train" else (STATS[chosen] if isinstance(chosen, str) else chosen)
    classes = train.classes
    num_classes = len(classes) if classes else DATASETS.attr(name, "num_classes", 10)
    return ImageData(name, train, test, mean, std, num_classes=num_classes, augment=augment, classes=classes)
