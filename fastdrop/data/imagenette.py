"""Imagenette through torchvision, decoded once to a uint8 tensor with labels from the fixed wnid list."""
from __future__ import annotations

from pathlib import Path

from .containers import DataError, Split
from .decode_cache import _decode_once


def _imagenette(root: Path, download: bool, train: bool, size: int = 160, stream=None) -> Split:
    """Imagenette through torchvision; JPEGs are decoded once (shorter side resized to `size`, centre
    crop) and the uint8 tensor is kept next to the images so later runs start at once."""
    from torchvision.datasets import Imagenette

    split = "train" if train else "val"
    tv_size = {160: "160px", 320: "320px"}.get(size, "full")
    try:
        ds = Imagenette(str(root), split=split, size=tv_size, download=download)
    except RuntimeError:
        folder = Path(Imagenette._ARCHIVES[tv_size][0]).stem
        raise DataError(f"Imagenette ({tv_size}) not found under {root} (expected {folder}/{split}/<wnid>/*.JPEG); "
                        "set data.root, or data.download=true when online") from None
    except OSError as e:
        raise DataError(f"Imagenette download/read failed under {root}: {e}") from None
    # torchvision numbers the classes found in each split's folder; number them from the fixed list of
    # the ten wnids instead, so a split missing a class cannot shift the labels.
    wnid_to_idx = {w: i for i, w in enumerate(sorted(Imagenette._WNID_TO_CLASS))}
    ds._samples = [(p, wnid_to_idx[Path(p).parent.name]) for p, _ in ds._samples]
    return _decode_once(ds, Path(ds._size_root) / f".fastdrop-{split}-{size}.pt", size, f"imagenette {split}",
                        stream)
