"""Feature cache: the states a dropped tail produced for every training image (paper Sect. 3.2, step 3).

A cache holds one tensor per state element (one for a plain cut, two inside a residual block: branch
activation and skip), with rows `view * N + sample`, stored by one of the backends in
`backends.py` (`device`, `host`, `disk`), or `auto`: the first registered backend whose `fits`
says yes (`device` if the cache takes at most half the free device memory, else `host` if it takes at
most half the available RAM, else `disk`).
If allocation fails (out of memory, disk full) the next backend in device -> host -> disk is tried; when
none fits, `CacheError` names the size needed. A finished disk cache is sealed with per-file checksums;
`FeatureCache.open_disk` (used when a killed run resumes) checks all of them and raises `CacheDamaged`
rather than ever reading a truncated or corrupted file.
"""
from __future__ import annotations

import errno
import logging
from pathlib import Path

import numpy as np
import torch

from ...files import human_bytes
from ...registry import CACHE_BACKENDS
from .backends import CacheError, DiskBackend

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}


def _nbytes(rows: int, shapes: list[tuple], dtype: torch.dtype) -> int:
    return sum(rows * int(np.prod(s)) * torch.finfo(dtype).bits // 8 for s in shapes)


def choose_backend(nbytes: int, device: torch.device) -> str:
    """`backend=auto`: the first registered backend that says the cache fits, else the last one."""
    names = CACHE_BACKENDS.names()
    return next((n for n in names if CACHE_BACKENDS[n].fits(nbytes, device)), names[-1])


class FeatureCache:
    def __init__(self, rows: int, shapes: list[tuple], dtype: torch.dtype, device: torch.device,
                 backend: str, disk_dir: Path | None = None):
        self.rows, self.shapes, self.dtype, self.device = rows, shapes, dtype, torch.device(device)
        self.disk_dir = Path(disk_dir) if disk_dir is not None else None
        self.nbytes = _nbytes(rows, shapes, dtype)
        order = CACHE_BACKENDS.names()
        want = choose_backend(self.nbytes, self.device) if backend == "auto" else backend
        if want not in CACHE_BACKENDS:
            raise CacheError(f"unknown cache backend {backend!r}; choose auto, {CACHE_BACKENDS.choices()}")
        errors = []
        for b in order[order.index(want):]:
            self.store = None
            try:
                self.tensors = self._allocate(b)
                self.backend = b
                break
            except (torch.OutOfMemoryError, MemoryError, OSError, RuntimeError) as e:
                if isinstance(e, OSError) and e.errno not in (errno.ENOSPC, errno.ENOMEM, errno.EDQUOT, None):
                    raise
                errors.append(f"{b}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                log.warning("feature cache of %s does not fit on %s, trying the next backend", human_bytes(self.nbytes), b)
                if self.store is not None:
                    self.store.release()
        else:
            raise CacheError(f"no room for the feature cache: it needs {human_bytes(self.nbytes)} "
                             f"({'; '.join(errors)}); free memory or disk, use strategy.cache.dtype=bf16, "
                             "or point the run directory at a larger disk")

    def _allocate(self, backend: str) -> list[torch.Tensor]:
        self.store = CACHE_BACKENDS[backend](self.device, self.disk_dir)
        return self.store.allocate(self.rows, self.shapes, self.dtype)

    def seal(self) -> None:
        """Make a disk cache readable by a resumed run (a no-op for memory backends)."""
        self.store.seal(self.rows, self.shapes, self.dtype)

    @classmethod
    def open_disk(cls, disk_dir: Path, rows: int, dtype: torch.dtype, device: torch.device) -> "FeatureCache":
        self = cls.__new__(cls)
        self.rows, self.dtype, self.device = rows, dtype, torch.device(device)
        self.disk_dir, self.backend = Path(disk_dir), "disk"
        self.store = DiskBackend(self.device, self.disk_dir)
        self.shapes, self.tensors = self.store.open(rows, dtype)
        self.nbytes = _nbytes(rows, self.shapes, dtype)
        return self

    def write(self, start: int, state: tuple) -> None:
        for dst, src in zip(self.tensors, state):
            dst[start: start + len(src)].copy_(src.detach(), non_blocking=False)

    def gather(self, rows: torch.Tensor, dtype: torch.dtype) -> tuple:
        """States of `rows` (on the storage's device) as `dtype` tensors on the training device."""
        return tuple(self.store.fetch(t.index_select(0, rows)).to(dtype) for t in self.tensors)

    @property
    def index_device(self) -> torch.device:
        return self.store.index_device

    def close(self) -> None:
        self.tensors = []
        self.store.release()
        if self.disk_dir is not None and (self.disk_dir / "meta.json").exists():
            (self.disk_dir / "meta.json").unlink()
        if self.disk_dir is not None and self.disk_dir.exists():
            try:
                self.disk_dir.rmdir()
            except OSError:
                pass
