"""Shared containers: a split as whole uint8 tensors, a dataset with its statistics, and the batched
on-device normalisation and augmentation (random crop + flip) that training applies to each batch."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .subset import balanced_indices


class DataError(RuntimeError):
    """Dataset missing or unreadable: the message is one line saying where and what to do."""


@dataclass
class Split:
    """A split in memory. The training loop reads it through `fetch` / `batches`, which a split that
    streams from disk (fastdrop.data.streaming.StreamSplit) also provides."""
    x: torch.Tensor  # uint8 [N, C, H, W]
    y: torch.Tensor  # int64 [N]
    classes: tuple | None = None  # class names by label, where the dataset has them (data=folder)
    streaming = False

    def __len__(self):
        return len(self.y)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    def take(self, idx) -> "Split":
        return Split(self.x[idx], self.y[idx], self.classes)

    def fetch(self, idx) -> torch.Tensor:
        return self.x[idx]

    def batches(self, index_batches):
        return (self.x[idx] for idx in index_batches)

    def sample(self, n: int | None, seed: int = 0) -> "Split":
        """A seeded class-balanced sample of n rows (fastdrop.data.subset); all rows when n is None."""
        idx = balanced_indices(self.y, n, seed)
        return self if idx is None else self.take(idx)

    def to(self, device) -> "Split":
        return Split(self.x.to(device), self.y.to(device), self.classes)


@dataclass
class ImageData:
    name: str
    train: Split
    test: Split
    mean: tuple
    std: tuple
    num_classes: int = 10
    augment: bool = False
    classes: tuple | None = None
    _stats: dict = field(default_factory=dict, repr=False)

    @property
    def in_channels(self) -> int:
        return self.train.image_shape[0]

    @property
    def image_size(self) -> int:
        return self.train.image_shape[-1]

    @property
    def streaming(self) -> bool:
        return self.train.streaming

    def to(self, device) -> "ImageData":
        self.train, self.test = self.train.to(device), self.test.to(device)
        return self

    def normalize(self, xb: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        key = (xb.device, dtype)
        if key not in self._stats:  # built once per device/dtype: no host-to-device copy per batch
            mean = torch.tensor(self.mean, device=xb.device, dtype=dtype).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=xb.device, dtype=dtype).view(1, -1, 1, 1)
            self._stats[key] = (mean, std)
        mean, std = self._stats[key]
        return (xb.to(dtype) / 255.0 - mean) / std

    def random_crop_flip(self, x: torch.Tensor, gen: torch.Generator, flip: bool = True) -> torch.Tensor:
        """Random crop with zero padding (size/8 px per side) and horizontal flip, batched on-device."""
        b, _, h, w = x.shape
        pad = max(1, h // 8)
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=gen)
        ox = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=gen)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        bi = torch.arange(b, device=x.device)[:, None, None, None]
        ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        out = xp[bi, ci, rows, cols]
        if flip:
            f = torch.rand(b, device=x.device, generator=gen) < 0.5
            out = torch.where(f[:, None, None, None], out.flip(-1), out)
        return out
