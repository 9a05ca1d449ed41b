"""The CIFAR-10 JPEG copy (class folders), decoded once to a uint8 tensor."""
from __future__ import annotations

from pathlib import Path

from .containers import DataError, Split
from .decode_cache import _decode_once


def _cifar10_jpeg(root: Path, download: bool, train: bool, stream=None) -> Split:
    """The CIFAR-10 JPEG copy (`<root>/cifar10-jpeg/{train,test}/<class>/*.jpg`, e.g. ../shared/data):
    class folders sort into CIFAR-10's own label order. Lossy re-encoding: say so in a row's `tag`."""
    from torchvision.datasets import ImageFolder

    folder = root / "cifar10-jpeg" / ("train" if train else "test")
    if not folder.is_dir():
        raise DataError(f"CIFAR-10 JPEG copy not found: expected {folder}/<class>/*.jpg "
                        "(extract cifar10-jpeg-q75.tar.gz into data.root)")
    try:
        ds = ImageFolder(str(folder))
    except (FileNotFoundError, OSError) as e:
        raise DataError(f"CIFAR-10 JPEG copy under {folder} is unreadable: {e}") from None
    return _decode_once(ds, folder.parent / f".fastdrop-{folder.name}-32.pt", 32, f"cifar10-jpeg {folder.name}",
                        stream)
