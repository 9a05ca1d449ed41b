"""Where a feature cache's tensors live: a small backend interface and its three implementations.

- `device`: on the training device (GPU memory, or CPU memory on a CPU run); gathers stay on device.
- `host`: CPU memory, pinned when training on a GPU, batches copied with non_blocking transfers.
- `disk`: numpy memory-maps under the run directory (raw arrays, not pickle). A sealed disk cache
  writes `meta.json` with the shape, dtype, size and BLAKE2 checksum of each file, and `open` checks all
  of them (raising `CacheDamaged`) before a resumed run reads a single row.
Allocation raises out-of-memory or `OSError(ENOSPC)` when there is no room; the cache then tries the
next registered backend.
A new backend is a `CacheBackend` subclass with a `name`, registered with `@CACHE_BACKENDS.register()`.
"""
from __future__ import annotations

import errno
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from ...errors import user_error
from ...files import atomic_write_text, human_bytes
from ...memory import host_available_bytes
from ...registry import CACHE_BACKENDS

_NP = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16, torch.bfloat16: np.uint16}


@user_error
class CacheError(RuntimeError):
    pass


class CacheDamaged(Exception):
    """A stored disk cache does not match its metadata; the caller rebuilds it."""


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class CacheBackend:
    """Storage for the cache's state tensors. `allocate` returns one [rows, *shape] tensor per shape;
    `fetch` brings gathered rows to the training device; `seal`/`release` persist and delete files."""

    name = ""

    def __init__(self, device: torch.device, disk_dir: Path | None = None):
        self.device, self.disk_dir = device, disk_dir

    @staticmethod
    def fits(nbytes: int, device: torch.device) -> bool:
        """Whether `backend=auto` should pick this backend for a cache of `nbytes` (the first registered
        one that fits is chosen; the last registered is the fallback)."""
        return True

    def allocate(self, rows: int, shapes: list[tuple], dtype: torch.dtype) -> list[torch.Tensor]:
        raise NotImplementedError

    @property
    def index_device(self) -> torch.device:
        """Where row indices for `index_select` must live."""
        return torch.device("cpu")

    def fetch(self, g: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            return g.pin_memory().to(self.device, non_blocking=True)
        return g

    def seal(self, rows: int, shapes: list[tuple], dtype: torch.dtype) -> None:
        pass

    def release(self) -> None:
        pass


@CACHE_BACKENDS.register()
class DeviceBackend(CacheBackend):
    name = "device"

    @staticmethod
    def fits(nbytes, device):  # at most half the free device memory (the head still has to train)
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else host_available_bytes()
        return nbytes <= 0.5 * free

    def allocate(self, rows, shapes, dtype):
        return [torch.empty((rows, *s), dtype=dtype, device=self.device) for s in shapes]

    @property
    def index_device(self):
        return self.device

    def fetch(self, g):
        return g


@CACHE_BACKENDS.register()
class HostBackend(CacheBackend):
    name = "host"

    @staticmethod
    def fits(nbytes, device):  # on a CPU run host memory *is* the device memory, already refused above
        return device.type == "cuda" and nbytes <= 0.5 * host_available_bytes()

    def allocate(self, rows, shapes, dtype):
        pin = self.device.type == "cuda"
        return [torch.empty((rows, *s), dtype=dtype, pin_memory=pin) for s in shapes]


@CACHE_BACKENDS.register()
class DiskBackend(CacheBackend):
    name = "disk"

    def __init__(self, device, disk_dir=None):
        super().__init__(device, disk_dir)
        self._files: list[Path] = []
        self._maps: list[np.memmap] = []

    def _map(self, path: Path, dtype: torch.dtype, mode: str, shape: tuple) -> torch.Tensor:
        self._files.append(path)  # first, so a failed allocation still removes a partial file
        mm = np.memmap(path, dtype=_NP[dtype], mode=mode, shape=shape)
        self._maps.append(mm)
        t = torch.from_numpy(mm)
        return t.view(torch.bfloat16) if dtype == torch.bfloat16 else t

    def allocate(self, rows, shapes, dtype):
        if self.disk_dir is None:
            raise CacheError("disk cache needs a run directory")
        self.disk_dir.mkdir(parents=True, exist_ok=True)
        nbytes = sum(rows * int(np.prod(s)) * torch.finfo(dtype).bits // 8 for s in shapes)
        free = shutil.disk_usage(self.disk_dir).free
        if nbytes > free:
            raise OSError(errno.ENOSPC, f"disk cache needs {human_bytes(nbytes)}, {human_bytes(free)} free "
                                        f"in {self.disk_dir}")
        return [self._map(self.disk_dir / f"state{i}.bin", dtype, "w+", (rows, *s)) for i, s in enumerate(shapes)]

    def seal(self, rows, shapes, dtype):
        """Flush and record what a later reader must find: shapes, dtype, sizes, checksums."""
        files = []
        for mm, path in zip(self._maps, self._files):
            mm.flush()
            files.append({"name": path.name, "bytes": path.stat().st_size, "blake2b": _file_digest(path)})
        meta = {"rows": rows, "shapes": [list(s) for s in shapes], "dtype": str(dtype), "files": files}
        atomic_write_text(self.disk_dir / "meta.json", json.dumps(meta))

    def open(self, rows: int, dtype: torch.dtype) -> tuple[list[tuple], list[torch.Tensor]]:
        """(shapes, tensors) of a sealed cache in `disk_dir`, after checking sizes and checksums."""
        try:
            meta = json.loads((self.disk_dir / "meta.json").read_text())
        except (OSError, ValueError) as e:
            raise CacheDamaged(f"no readable meta.json in {self.disk_dir} ({e})") from None
        if meta.get("rows") != rows or meta.get("dtype") != str(dtype):
            raise CacheDamaged(f"{self.disk_dir} holds {meta.get('rows')} rows of {meta.get('dtype')}, "
                               f"expected {rows} of {dtype}")
        shapes = [tuple(s) for s in meta["shapes"]]
        tensors = []
        for f, shape in zip(meta["files"], shapes):
            path = self.disk_dir / f["name"]
            expect = rows * int(np.prod(shape)) * np.dtype(_NP[dtype]).itemsize
            size = path.stat().st_size if path.exists() else -1
            if size != f["bytes"] or size != expect:
                raise CacheDamaged(f"{path} is {size} bytes, expected {expect} (truncated or mismatched)")
            if _file_digest(path) != f["blake2b"]:
                raise CacheDamaged(f"{path} fails its checksum (corrupted)")
            tensors.append(self._map(path, dtype, "r+", (rows, *shape)))
        return shapes, tensors

    def release(self):
        self._maps = []
        for p in self._files:
            try:
                p.unlink()
            except OSError:
                pass
        self._files = []

