"""The real-MNIST subset bundled with the package (10k train / 2k test), the offline default."""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch

from .containers import DataError, Split

ASSETS = Path(__file__).parent / "assets"


def _mnist_mini(root: Path, download: bool, train: bool) -> Split:
    path = ASSETS / "mnist_mini.npz"
    try:
        with np.load(path) as z:
            k = "train" if train else "test"
            x, y = z[f"x_{k}"], z[f"y_{k}"]
    except (OSError, ValueError, KeyError, zlib.error) as e:
        raise DataError(f"the bundled MNIST subset {path} is missing or damaged ({e}); "
                        "rebuild it with: python scripts/build_mnist_subset.py") from None
    return Split(torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)))
