"""Decode a folder dataset of JPEGs once into a uint8 tensor kept next to the images, keyed by the file
list and sizes so a changed image set is decoded again and a damaged cache is never trusted."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from ..files import atomic_torch_save
from .containers import DataError, Split
from .streaming import StreamPolicy, StreamSplit, decode_to_map

log = logging.getLogger(__name__)


def _decode_once(ds, cache: Path, size: int, what: str, stream: StreamPolicy | None = None) -> Split | StreamSplit:
    """Decode a torchvision folder dataset of JPEGs to one uint8 tensor (shorter side resized to `size`,
    centre crop), kept in `cache` so later runs start at once. The cache is keyed by the file list and
    sizes: a changed image set is decoded again, a damaged cache is ignored. When `stream` wants it
    (fastdrop.data.streaming), the images go to a memory-mapped file instead and stream from there."""
    import hashlib

    from torchvision.transforms import v2

    samples = ds.samples if hasattr(ds, "samples") else ds._samples
    key = hashlib.sha256("\n".join(f"{p}:{y}:{os.path.getsize(p)}" for p, y in samples).encode()).hexdigest()
    decode = v2.Compose([v2.PILToTensor(), v2.Resize(size, antialias=True), v2.CenterCrop(size)])
    if stream is not None and stream.wants(len(samples) * 3 * size * size):
        ds.transform = decode
        return decode_to_map(ds, cache.with_suffix(".u8"), size, key, what, stream)
    if cache.exists():
        try:
            d = torch.load(cache, weights_only=True)
            if d.get("key") == key and len(d["y"]) == len(ds):
                return Split(d["x"], d["y"])
            log.info("decode cache %s is stale, decoding again", cache)
        except Exception as e:  # a stale or damaged decode cache is rebuilt, never trusted
            log.warning("ignoring damaged decode cache %s (%s)", cache, e)
    ds.transform = decode
    xs, ys = [], []
    try:
        from tqdm import tqdm
        for i in tqdm(range(len(ds)), desc=f"decoding {what}", leave=False):
            img, label = ds[i]
            if img.shape[0] == 1:
                img = img.expand(3, -1, -1)
            xs.append(img)
            ys.append(label)
    except OSError as e:
        raise DataError(f"unreadable image in {what}: {e}") from None
    if not xs:
        raise DataError(f"no images found for {what}")
    out = Split(torch.stack(xs), torch.tensor(ys, dtype=torch.long))
    try:
        atomic_torch_save({"x": out.x, "y": out.y, "key": key}, cache)
    except OSError:
        pass  # read-only data folder: decode again next time
    return out
