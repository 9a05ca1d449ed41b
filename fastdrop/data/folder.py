"""`data=folder`: your own images in torchvision's ImageFolder layout, decoded once into uint8 tensors.

Layout: `<data.root>/train/<class>/*` for training and `<data.root>/val/<class>/*` (or `test/`) for
testing, any number of classes, JPEG or PNG (other files are ignored; class folders may nest). The
classes are the folder names of train/, sorted, numbered from 0; the test split uses the same numbers
(a test class that train/ lacks is an error, a train class with no test images only a log line). Every
image is decoded with torchvision.io as RGB, its shorter side resized to `data.image_size` (antialiased)
and centre-cropped to a square, once: the uint8 tensor is kept in `<data.root>/.fastdrop-<split>-<size>.pt`
(the shared decode cache, keyed by the file list and sizes). A split over the memory budget
(`data.memory_budget_gb`) streams from a memory-mapped file (fastdrop.data.streaming; `data.stream`),
or, with `data.stream=false`, is refused; otherwise it is held whole, on the training device.
Normalisation uses the training split's own per-channel mean/std (load_data's `stats="train"`), or
ImageNet's when the starting weights are torchvision's.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch

from .containers import DataError, Split
from .decode_cache import _decode_once

log = logging.getLogger(__name__)

EXTENSIONS = (".jpg", ".jpeg", ".png")
TEST_DIRS = ("val", "test")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
                  and not p.name.startswith("."))


def _classes(split_dir: Path) -> list[str]:
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def _split_dir(root: Path, train: bool) -> Path:
    layout = f"expected {root}/train/<class>/*.jpg|png and {root}/val/<class>/* (or test/)"
    if not (root / "train").is_dir():
        raise DataError(f"data=folder: no training split {root / 'train'} ({layout}; set data.root)")
    if train:
        return root / "train"
    found = [root / d for d in TEST_DIRS if (root / d).is_dir()]
    if not found:
        raise DataError(f"data=folder: no test split under {root}: neither val/ nor test/ ({layout})")
    return found[0]


def _samples(root: Path, train: bool) -> tuple[list[str], list[tuple[str, int]], Path]:
    classes = _classes(root / "train") if (root / "train").is_dir() else []
    folder = _split_dir(root, train)
    if not classes:
        raise DataError(f"data=folder: {root / 'train'} holds no class folders (expected train/<class>/*.jpg)")
    index = {c: i for i, c in enumerate(classes)}
    samples = []
    for c in _classes(folder):
        if c not in index:
            raise DataError(f"data=folder: {folder / c} is not a class of the training split "
                            f"({len(classes)} classes in {root / 'train'})")
        files = _images(folder / c)
        if not files:
            raise DataError(f"data=folder: class folder {folder / c} holds no JPEG or PNG images")
        samples += [(str(p), index[c]) for p in files]
    missing = sorted(set(classes) - set(_classes(folder)))
    if missing:
        log.info("data=folder: %s has no images of %d class(es): %s", folder, len(missing), ", ".join(missing[:5]))
    return classes, samples, folder


def memory_budget(gb: float | None) -> int:
    """Bytes a split may take: `gb`, or half the machine's RAM."""
    if gb is not None:
        return int(gb * 2 ** 30)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2 ** 30


class _Decoded:
    """The part of a torchvision folder dataset `_decode_once` uses, decoding with torchvision.io."""

    def __init__(self, samples: list[tuple[str, int]]):
        self.samples, self.transform = samples, None

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        from torchvision.io import ImageReadMode, decode_image, read_file

        path, label = self.samples[i]
        try:
            with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders (for TorchCodec)
                warnings.simplefilter("ignore", DeprecationWarning)
                img = decode_image(read_file(path), mode=ImageReadMode.RGB)
        except (RuntimeError, OSError, ValueError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataError(f"data=folder: unreadable image {path} ({first}); remove or replace it") from None
        return self.transform(img), label  # the cache's PIL-to-tensor step passes tensors through


def _folder(root: Path, download: bool, train: bool, size: int | None = None,
            memory_budget_gb: float | None = None, stream=None) -> Split:
    if not size:
        raise DataError("data=folder needs data.image_size (images are resized to it: shorter side + centre crop)")
    classes, samples, folder = _samples(root, train)
    need, limit = len(samples) * 3 * size * size, memory_budget(memory_budget_gb)
    streams = stream is not None and stream.wants(need)
    if need > limit and not streams:
        raise DataError(f"data=folder: the {folder.name} split ({len(samples)} images at 3x{size}x{size}) needs "
                        f"{need / 2 ** 30:.2f} GiB as uint8, over the memory budget of {limit / 2 ** 30:.2f} GiB "
                        "(data.memory_budget_gb); lower data.image_size, raise the budget or stream it (data.stream=true)")
    split = _decode_once(_Decoded(samples), root / f".fastdrop-{folder.name}-{size}.pt", size, f"folder {folder.name}",
                         stream if streams else None)
    split.classes = tuple(classes)
    return split


def channel_stats(x) -> tuple[tuple, tuple]:
    """Per-channel mean and std of uint8 images [N, C, H, W] (in [0, 1] units), in chunks; `x` is a
    tensor or a split (a streamed one is read in batches)."""
    if isinstance(x, torch.Tensor):
        shape, chunks = tuple(x.shape[1:]), x.split(256)
    else:
        shape, chunks = x.image_shape, x.batches([slice(i, i + 256) for i in range(0, len(x), 256)])
    c = shape[0]
    s = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for chunk in chunks:
        f = chunk.to(torch.float64) / 255.0
        s += f.sum((0, 2, 3))
        s2 += (f * f).sum((0, 2, 3))
    n = len(x) * shape[1] * shape[2]
    mean = s / n
    std = (s2 / n - mean ** 2).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())
