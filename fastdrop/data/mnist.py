"""MNIST through torchvision, from the official IDX files (the .gz archives are extracted in place)."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from ..results import atomic_write
from .containers import DataError, Split

MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def _mnist(root: Path, download: bool, train: bool) -> Split:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    # torchvision reads the extracted IDX files; extract .gz files that are present ourselves, so an
    # offline copy of the official archives (like ../shared/data/MNIST) works with download=false.
    for f in MNIST_FILES:
        gz, out = raw / f"{f}.gz", raw / f
        if not out.exists() and gz.exists():
            try:
                data = gzip.decompress(gz.read_bytes())
            except (OSError, EOFError, zlib.error) as e:
                raise DataError(f"MNIST file {gz} is corrupted ({e}); delete it and copy or download it again") from None
            try:
                atomic_write(out, lambda f: f.write(data))
            except OSError as e:
                raise DataError(f"cannot extract {gz} next to itself ({e}); copy the MNIST folder to a "
                                f"writable data.root") from None
    try:
        ds = MNIST(str(root), train=train, download=download)
    except RuntimeError as e:
        if "not found" in str(e).lower():
            raise DataError(f"MNIST not found under {raw} (expected {', '.join(MNIST_FILES)} or their .gz); "
                            "set data.root to a folder holding MNIST/raw, or data.download=true when online") from None
        raise DataError(f"MNIST under {raw} could not be read: {e}") from None
    except (ValueError, IndexError) as e:
        raise DataError(f"MNIST files under {raw} are truncated or corrupted ({e}); delete them and fetch again") from None
    except OSError as e:
        raise DataError(f"MNIST download/read failed under {raw}: {e}; with no network, copy the files there") from None
    return Split(ds.data.unsqueeze(1).contiguous(), ds.targets.long())
