"""Datasets as whole uint8 tensors, batched by index on the training device.

Every split is loaded once through torchvision's dataset classes (MNIST, CIFAR10, Imagenette) or from
the MNIST subset bundled with the package (`mnist_mini`, the offline default), and kept as a uint8
tensor [N, C, H, W] with int64 labels. Training draws batches by a seeded index permutation and
normalises (and, if configured, augments) each batch on the device, so the hot loop has no per-sample
Python work and no DataLoader workers. The permutation and augmentation generators are re-seeded from
(seed, epoch), so a resumed run sees exactly the batches of an uninterrupted one.
"""
from __future__ import annotations

import gzip
import logging
import os
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..results import atomic_write, atomic_torch_save
from .subset import balanced_indices

log = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "assets"
STATS = {  # per-channel mean/std of the training sets
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenette": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class DataError(RuntimeError):
    """Dataset missing or unreadable: the message is one line saying where and what to do."""


@dataclass
class Split:
    x: torch.Tensor  # uint8 [N, C, H, W]
    y: torch.Tensor  # int64 [N]

    def __len__(self):
        return len(self.y)

    def sample(self, n: int | None, seed: int = 0) -> "Split":
        """A seeded class-balanced sample of n rows (fastdrop.data.subset); all rows when n is None."""
        idx = balanced_indices(self.y, n, seed)
        return self if idx is None else Split(self.x[idx], self.y[idx])

    def to(self, device) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class ImageData:
    name: str
    train: Split
    test: Split
    mean: tuple
    std: tuple
    num_classes: int = 10
    augment: bool = False
    _stats: dict = field(default_factory=dict, repr=False)

    @property
    def in_channels(self) -> int:
        return self.train.x.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.x.shape[-1]

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


# ---------------------------------------------------------------------------------------------- loaders

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


def _cifar10(root: Path, download: bool, train: bool) -> Split:
    from torchvision.datasets import CIFAR10

    class _CIFAR10(CIFAR10):
        # torchvision checks the official md5 of every batch file on each load; we check the files are
        # there and let unpickling catch damage, so copies and test fixtures load too.
        def _check_integrity(self):
            return all((Path(self.root) / self.base_folder / f).exists() for f, _ in self.train_list + self.test_list)

        def _load_meta(self):  # torchvision md5-checks batches.meta here too
            path = Path(self.root) / self.base_folder / self.meta["filename"]
            if not path.is_file():
                raise RuntimeError("Dataset metadata file not found")
            with open(path, "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    folder = root / CIFAR10.base_folder
    try:
        ds = _CIFAR10(str(root), train=train, download=download)
    except RuntimeError:
        raise DataError(f"CIFAR-10 not found under {folder} (python pickle batches, 'cifar-10-python.tar.gz' "
                        "extracted); set data.root, or data.download=true when online") from None
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError) as e:
        raise DataError(f"CIFAR-10 batches under {folder} are corrupted ({type(e).__name__}: {e}); "
                        "delete the folder and fetch it again") from None
    except OSError as e:
        raise DataError(f"CIFAR-10 download/read failed under {folder}: {e}") from None
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return Split(x, torch.tensor(ds.targets, dtype=torch.long))


def _imagenette(root: Path, download: bool, train: bool, size: int = 160) -> Split:
    """Imagenette through torchvision; JPEGs are decoded once (shorter side resized to `size`, centre
    crop) and the uint8 tensor is kept next to the images so later runs start at once."""
    from torchvision.datasets import Imagenette
    from torchvision.transforms import v2

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
    return _decode_once(ds, Path(ds._size_root) / f".fastdrop-{split}-{size}.pt", size, f"imagenette {split}")


def _cifar10_jpeg(root: Path, download: bool, train: bool) -> Split:
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
    return _decode_once(ds, folder.parent / f".fastdrop-{folder.name}-32.pt", 32, f"cifar10-jpeg {folder.name}")


def _decode_once(ds, cache: Path, size: int, what: str) -> Split:
    """Decode a torchvision folder dataset of JPEGs to one uint8 tensor (shorter side resized to `size`,
    centre crop), kept in `cache` so later runs start at once. The cache is keyed by the file list and
    sizes: a changed image set is decoded again, a damaged cache is ignored."""
    import hashlib

    from torchvision.transforms import v2

    samples = ds.samples if hasattr(ds, "samples") else ds._samples
    key = hashlib.sha256("\n".join(f"{p}:{y}:{os.path.getsize(p)}" for p, y in samples).encode()).hexdigest()
    if cache.exists():
        try:
            d = torch.load(cache)
            if d.get("key") == key and len(d["y"]) == len(ds):
                return Split(d["x"], d["y"])
            log.info("decode cache %s is stale, decoding again", cache)
        except Exception as e:  # a stale or damaged decode cache is rebuilt, never trusted
            log.warning("ignoring damaged decode cache %s (%s)", cache, e)
    ds.transform = v2.Compose([v2.PILToTensor(), v2.Resize(size, antialias=True), v2.CenterCrop(size)])
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


LOADERS: dict[str, tuple[Callable, str]] = {
    "mnist_mini": (_mnist_mini, "mnist"),
    "mnist": (_mnist, "mnist"),
    "cifar10": (_cifar10, "cifar10"),
    "imagenette": (_imagenette, "imagenette"),
    "cifar10_jpeg": (_cifar10_jpeg, "cifar10"),
}


def load_data(name: str, root: str = "data", download: bool = False, train_subset: int | None = None,
              test_subset: int | None = None, augment: bool = False, image_size: int | None = None,
              subset_seed: int = 0) -> ImageData:
    if name not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(LOADERS)}")
    fn, stats = LOADERS[name]
    kw = {"size": image_size} if name == "imagenette" and image_size else {}
    r = Path(root).expanduser()
    train = fn(r, download, True, **kw).sample(train_subset, subset_seed)
    test = fn(r, download, False, **kw).sample(test_subset, subset_seed)
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"{name}: empty split after subsetting (train {len(train)}, test {len(test)})")
    mean, std = STATS[stats]
    return ImageData(name, train, test, mean, std, num_classes=10, augment=augment)
