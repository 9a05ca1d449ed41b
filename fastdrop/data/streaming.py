"""Splits larger than memory: JPEGs decoded once into a memory-mapped uint8 file, batches read by torch
DataLoader workers into pinned memory.

The folder datasets (cifar10_jpeg, imagenette, folder) stream when `data.stream=true`, or with the default
`data.stream=null` when the decoded split would exceed `data.memory_budget_gb` (default: half the
available RAM); everything else stays an in-memory `Split`. The first run decodes the images (in
DataLoader workers, the same transform as the in-memory path, so the bytes are identical) straight into
`<folder>/.fastdrop-<split>-<size>.u8`, next to a `.json` with the shape, labels and the key of the file
list; a later run maps the file at once, and a stale or truncated file is decoded again. Nothing ever
holds the split in memory: a batch of rows is read from the map by a worker, pinned, and copied to the
device, where it is normalised and augmented as in memory. Subsets and DDP shards are row lists into the
same file. Dropping keeps its feature cache on the disk backend for a streamed split (cache.backend=auto).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..memory import host_available_bytes
from ..files import atomic_write_text
from .containers import DataError
from .subset import balanced_indices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamPolicy:
    """When a folder dataset streams: `stream` True/False forces it, None streams above the budget."""
    stream: bool | None = None
    memory_budget_gb: float | None = None
    workers: int = 2

    def wants(self, nbytes: int) -> bool:
        if self.stream is not None:
            return self.stream
        budget = self.memory_budget_gb * 2 ** 30 if self.memory_budget_gb is not None else 0.5 * host_available_bytes()
        return nbytes > budget


class _Rows(Dataset):
    """Item = a whole batch: DataLoader(sampler=index batches, batch_size=None) hands each worker one.
    Pickles as (path, shape, rows): each worker maps the file itself, whatever the start method."""

    def __init__(self, path: Path, shape: tuple, rows: torch.Tensor):
        self.path, self.shape, self.rows, self._map = path, shape, rows, None

    def __getstate__(self):
        return {**self.__dict__, "_map": None}

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, idx):
        if self._map is None:
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r", shape=self.shape)
        return torch.from_numpy(np.ascontiguousarray(self._map[self.rows[idx].numpy()]))


class StreamSplit:
    """The rows `rows` of a memory-mapped uint8 image file of `shape` [M, C, H, W], with labels `y`."""
    streaming = True

    def __init__(self, path: Path, shape: tuple, rows: torch.Tensor, y: torch.Tensor, workers: int = 2,
                 device: torch.device | str = "cpu"):
        self.path, self.shape, self.rows, self.y, self.workers = Path(path), tuple(shape), rows, y, workers
        self.device = torch.device(device)
        self.classes: tuple | None = None  # class names by label (data=folder)
        self._reader = _Rows(self.path, self.shape, rows)

    def __len__(self):
        return len(self.y)

    @property
    def image_shape(self) -> tuple:
        return self.shape[1:]

    def _with(self, rows: torch.Tensor, y: torch.Tensor, device) -> "StreamSplit":
        out = StreamSplit(self.path, self.shape, rows, y, self.workers, device)
        out.classes = self.classes
        return out

    def take(self, idx: torch.Tensor) -> "StreamSplit":
        idx = torch.as_tensor(idx, device=self.y.device)
        return self._with(self.rows[idx.cpu()], self.y[idx], self.device)

    def sample(self, n: int | None, seed: int = 0) -> "StreamSplit":
        idx = balanced_indices(self.y, n, seed)
        return self if idx is None else self.take(idx)

    def to(self, device) -> "StreamSplit":
        return self._with(self.rows, self.y.to(device), device)

    def fetch(self, idx) -> torch.Tensor:
        """One batch, read in this process (cache building, probes)."""
        return self._reader[_cpu(idx)].to(self.device)

    def batches(self, index_batches: Iterable) -> Iterator[torch.Tensor]:
        """The images of each index batch, in order, read ahead by the workers."""
        pin = self.device.type == "cuda"
        loader = DataLoader(self._reader, sampler=[_cpu(i) for i in index_batches], batch_size=None,
                            num_workers=self.workers, pin_memory=pin,
                            prefetch_factor=4 if self.workers else None, generator=_own_generator())
        for xb in loader:
            yield xb.to(self.device, non_blocking=pin)


def _own_generator() -> torch.Generator:
    # A DataLoader seeds its workers from its generator, by default the global one: that would shift
    # the dropout masks of a streamed run against the same run in memory.
    return torch.Generator().manual_seed(0)


def _cpu(idx):
    return idx.cpu() if isinstance(idx, torch.Tensor) else idx  # a slice stays a slice


# -- decoding once into the map ----------------------------------------------------------------------

def _collate(items):
    xs = [x.expand(3, -1, -1) if x.shape[0] == 1 else x for x, _ in items]  # grey images as RGB
    return torch.stack(xs), torch.tensor([y for _, y in items], dtype=torch.long)


def decode_to_map(ds, path: Path, size: int, key: str, what: str, policy: StreamPolicy) -> StreamSplit:
    """`ds` (a torchvision folder dataset with the decode transform set) as a StreamSplit over `path`."""
    meta_path = path.with_suffix(".json")
    n = len(ds)
    shape = (n, 3, size, size)
    try:
        meta = json.loads(meta_path.read_text())
        if meta["key"] == key and tuple(meta["shape"]) == shape and path.stat().st_size == int(np.prod(shape)):
            return StreamSplit(path, shape, torch.arange(n), torch.tensor(meta["y"], dtype=torch.long), policy.workers)
        log.info("decoded map %s is stale, decoding again", path)
    except (OSError, ValueError, KeyError):
        pass
    if n == 0:
        raise DataError(f"no images found for {what}")
    images = np.memmap(path, dtype=np.uint8, mode="w+", shape=shape)
    ys, at = [], 0
    loader = DataLoader(ds, batch_size=256, num_workers=policy.workers, collate_fn=_collate,
                        generator=_own_generator())
    try:
        from tqdm import tqdm
        for xb, yb in tqdm(loader, desc=f"decoding {what} to {path.name}", leave=False):
            images[at: at + len(xb)] = xb.numpy()
            ys += yb.tolist()
            at += len(xb)
    except OSError as e:
        raise DataError(f"unreadable image in {what}: {e}") from None
    images.flush()
    atomic_write_text(meta_path, json.dumps({"key": key, "shape": list(shape), "y": ys}))  # last: marks it whole
    log.info("decoded %d images of %s into %s (%.1f GiB, memory-mapped)", n, what, path, np.prod(shape) / 2 ** 30)
    del images
    return StreamSplit(path, shape, torch.arange(n), torch.tensor(ys, dtype=torch.long), policy.workers)
