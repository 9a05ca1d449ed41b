"""Feature cache: the states a dropped tail produced for every training image (paper Sect. 3.2, step 3).

A cache holds one tensor per state element (one for a plain cut, two inside a residual block: branch
activation and skip), with rows `view * N + sample`. Backends:
- `device`: on the training device (GPU memory, or CPU memory on a CPU run); gathers stay on device.
- `host`: CPU memory, pinned when training on a GPU, batches copied with non_blocking transfers.
- `disk`: numpy memory-maps under the run directory (raw arrays, not pickle), deleted by `close()`.
- `auto`: `device` if the cache takes at most half the free device memory, else `host` if it takes at
  most half the available RAM, else `disk`.
If allocation fails (out of memory, disk full) the next backend in device -> host -> disk is tried; when
none fits, `CacheError` names the size needed. A finished disk cache writes `meta.json` with the shape,
dtype, size and BLAKE2 checksum of each file; `FeatureCache.open_disk` (used when a killed run resumes)
checks all of them and raises `CacheDamaged` rather than ever reading a truncated or corrupted file.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from ..results import atomic_write_text

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}
ORDER = ["device", "host", "disk"]
_NP = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16, torch.bfloat16: np.uint16}


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



def _host_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _device_free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return _host_available_bytes()


def choose_backend(nbytes: int, device: torch.device) -> str:
    if nbytes <= 0.5 * _device_free_bytes(device):
        return "device"
    if device.type == "cuda" and nbytes <= 0.5 * _host_available_bytes():
        return "host"
    return "disk"


def human_bytes(n: float) -> str:
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"]:
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024


class FeatureCache:
    def __init__(self, rows: int, shapes: list[tuple], dtype: torch.dtype, device: torch.device,
                 backend: str, disk_dir: Path | None = None):
        self.rows, self.shapes, self.dtype, self.device = rows, shapes, dtype, torch.device(device)
        self.disk_dir = Path(disk_dir) if disk_dir is not None else None
        self.nbytes = sum(rows * int(np.prod(s)) * torch.finfo(dtype).bits // 8 for s in shapes)
        want = choose_backend(self.nbytes, self.device) if backend == "auto" else backend
        if want not in ORDER:
            raise CacheError(f"unknown cache backend {backend!r}; choose auto, device, host or disk")
        errors = []
        for b in ORDER[ORDER.index(want):]:
            try:
                self.tensors = self._allocate(b)
                self.backend = b
                break
            except (torch.OutOfMemoryError, MemoryError, OSError, RuntimeError) as e:
                if isinstance(e, OSError) and e.errno not in (errno.ENOSPC, errno.ENOMEM, errno.EDQUOT, None):
                    raise
                errors.append(f"{b}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                log.warning("feature cache of %s does not fit on %s, trying the next backend", human_bytes(self.nbytes), b)
                self._cleanup_files()
        else:
            raise CacheError(f"no room for the feature cache: it needs {human_bytes(self.nbytes)} "
                             f"({'; '.join(errors)}); free memory or disk, use strategy.cache.dtype=bf16, "
                             "or point the run directory at a larger disk")

    # -- allocation -------------------------------------------------------------------------------
    def _allocate(self, backend: str) -> list[torch.Tensor]:
        if backend == "device":
            return [torch.empty((self.rows, *s), dtype=self.dtype, device=self.device) for s in self.shapes]
        if backend == "host":
            pin = self.device.type == "cuda"
            return [torch.empty((self.rows, *s), dtype=self.dtype, pin_memory=pin) for s in self.shapes]
        if self.disk_dir is None:
            raise CacheError("disk cache needs a run directory")
        self.disk_dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.disk_dir).free
        if self.nbytes > free:
            raise OSError(errno.ENOSPC, f"disk cache needs {human_bytes(self.nbytes)}, {human_bytes(free)} free "
                                        f"in {self.disk_dir}")
        out = []
        npdtype = _NP[self.dtype]
        self._files, self._maps = [], []
        for i, s in enumerate(self.shapes):
            path = self.disk_dir / f"state{i}.bin"
            self._files.append(path)
            arr = np.memmap(path, dtype=npdtype, mode="w+", shape=(self.rows, *s))
            self._maps.append(arr)
            t = torch.from_numpy(arr)
            out.append(t.view(torch.bfloat16) if self.dtype == torch.bfloat16 else t)
        return out

    # -- persistence (disk backend) ------------------------------------------------------------------
    def seal(self) -> None:
        """Flush a disk cache and record what a later reader must find: shapes, dtype, sizes, checksums."""
        if self.backend != "disk":
            return
        files = []
        for mm, path in zip(self._maps, self._files):
            mm.flush()
            files.append({"name": path.name, "bytes": path.stat().st_size, "blake2b": _file_digest(path)})
        meta = {"rows": self.rows, "shapes": [list(s) for s in self.shapes], "dtype": str(self.dtype), "files": files}
        atomic_write_text(self.disk_dir / "meta.json", json.dumps(meta))

    @classmethod
    def open_disk(cls, disk_dir: Path, rows: int, dtype: torch.dtype, device: torch.device) -> "FeatureCache":
        disk_dir = Path(disk_dir)
        try:
            meta = json.loads((disk_dir / "meta.json").read_text())
        except (OSError, ValueError) as e:
            raise CacheDamaged(f"no readable meta.json in {disk_dir} ({e})") from None
        if meta.get("rows") != rows or meta.get("dtype") != str(dtype):
            raise CacheDamaged(f"{disk_dir} holds {meta.get('rows')} rows of {meta.get('dtype')}, "
                               f"expected {rows} of {dtype}")
        self = cls.__new__(cls)
        self.rows, self.shapes, self.dtype, self.device = rows, [tuple(s) for s in meta["shapes"]], dtype, torch.device(device)
        self.disk_dir, self.backend = disk_dir, "disk"
        self.nbytes = sum(rows * int(np.prod(s)) * torch.finfo(dtype).bits // 8 for s in self.shapes)
        npdtype = _NP[dtype]
        self._files, self._maps, self.tensors = [], [], []
        for f, shape in zip(meta["files"], self.shapes):
            path = disk_dir / f["name"]
            expect = rows * int(np.prod(shape)) * np.dtype(npdtype).itemsize
            size = path.stat().st_size if path.exists() else -1
            if size != f["bytes"] or size != expect:
                raise CacheDamaged(f"{path} is {size} bytes, expected {expect} (truncated or mismatched)")
            if _file_digest(path) != f["blake2b"]:
                raise CacheDamaged(f"{path} fails its checksum (corrupted)")
            mm = np.memmap(path, dtype=npdtype, mode="r+", shape=(rows, *shape))
            self._maps.append(mm)
            t = torch.from_numpy(mm)
            self.tensors.append(t.view(torch.bfloat16) if dtype == torch.bfloat16 else t)
            self._files.append(path)
        return self

    def _cleanup_files(self):
        for p in getattr(self, "_files", []):
            try:
                p.unlink()
            except OSError:
                pass
        self._files = []

    # -- access -----------------------------------------------------------------------------------
    def write(self, start: int, state: tuple) -> None:
        for dst, src in zip(self.tensors, state):
            dst[start: start + len(src)].copy_(src.detach(), non_blocking=False)

    def gather(self, rows: torch.Tensor, dtype: torch.dtype) -> tuple:
        """States of `rows` (on the storage's device) as `dtype` tensors on the training device."""
        out = []
        for t in self.tensors:
            g = t.index_select(0, rows)
            if self.backend != "device" and self.device.type == "cuda":
                g = g.pin_memory().to(self.device, non_blocking=True)
            out.append(g.to(dtype))
        return tuple(out)

    @property
    def index_device(self) -> torch.device:
        return self.device if self.backend == "device" else torch.device("cpu")

    def close(self) -> None:
        self.tensors, self._maps = [], []
        self._cleanup_files()
        if self.disk_dir is not None and (self.disk_dir / "meta.json").exists():
            (self.disk_dir / "meta.json").unlink()
        if self.disk_dir is not None and self.disk_dir.exists():
            try:
                self.disk_dir.rmdir()
            except OSError:
                pass
