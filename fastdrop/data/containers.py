"""Shared containers: a split as whole uint8 tensors, a dataset with its statistics, and the batched
on-device normalisation and augmentation (random crop + flip) that training applies to each batch."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ..errors import user_error
from .subset import balanced_indices


@user_error
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

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Reject what would train silently wrong or fail deep inside torch: images must be uint8
        [N, C, H, W] (0..255; float images are not rescaled guesses), labels integers in
        [0, num_classes) (any integer dtype; stored as int64), one label per image, the same C, H, W in
        both splits and one mean/std per channel. Raises ValueError naming the problem and the fix."""
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"ImageData {self.name!r}: num_classes must be an int >= 2 (got {self.num_classes!r})")
        for k in ("train", "test"):
            split = getattr(self, k)
            if not (isinstance(split, Split) or getattr(split, "streaming", False)):
                raise ValueError(f"ImageData {self.name!r}: {k} must be a Split(x, y), not {type(split).__name__}")
            if not split.streaming:  # a streamed split is a uint8 file by construction
                _checked_images(split.x, f"{k}.x")
            n = len(split.rows) if split.streaming else len(split.x)
            y = _checked_labels(split.y, n, self.num_classes, f"{k}.y")
            if y is not split.y:
                split = replace(split, y=y) if isinstance(split, Split) else split._with(split.rows, y, split.device)
                setattr(self, k, split)
        shapes = {k: tuple(getattr(self, k).image_shape) for k in ("train", "test")}
        if shapes["train"] != shapes["test"]:
            raise ValueError(f"ImageData {self.name!r}: train and test images differ in [C, H, W]: {shapes}")
        c = shapes["train"][0]
        if len(self.mean) != c or len(self.std) != c or any(v <= 0 for v in self.std):
            raise ValueError(f"ImageData {self.name!r}: mean and std need one value per channel ({c}) and std > 0 "
                             f"(got mean {tuple(self.mean)}, std {tuple(self.std)})")

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


def _checked_images(x, what: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor (torch.from_numpy(array) for numpy), not {type(x).__name__}")
    if x.dim() != 4 or len(x) == 0:
        raise ValueError(f"{what} must be a non-empty 4-D tensor [N, C, H, W] (got shape {list(x.shape)}; "
                         "for [N, H, W, C] use x.permute(0, 3, 1, 2), for [N, H, W] x.unsqueeze(1))")
    if x.dtype != torch.uint8:
        lo, hi = x.min().item(), x.max().item()
        how = "(x * 255).round().clamp(0, 255).to(torch.uint8)" if x.is_floating_point() and hi <= 1 else \
            "x.round().clamp(0, 255).to(torch.uint8)" if x.is_floating_point() else "x.clamp(0, 255).to(torch.uint8)"
        raise ValueError(f"{what} must be uint8 images in 0..255 (got {x.dtype} with values in [{lo:g}, {hi:g}]); "
                         f"convert with {how}")


def _checked_labels(y, n: int, num_classes: int, what: str) -> torch.Tensor:
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor of class indices, not {type(y).__name__}")
    if y.dim() != 1 or len(y) != n:
        raise ValueError(f"{what} must be 1-D with one label per image (got shape {list(y.shape)} for {n} images)")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{what} must hold integer class indices (got {y.dtype}); convert with y.long()")
    lo, hi = y.min().item(), y.max().item()
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{what} must lie in [0, num_classes) = [0, {num_classes}) (got labels in [{lo}, {hi}]); "
                         "set num_classes or renumber the labels")
    return y if y.dtype == torch.int64 else y.long()
