"""A map-style torch Dataset of (image, label) as a training input (`fastdrop.api.fit`).

Images must be tensors [C, H, W] of one shape: uint8 (`PILToTensor`) or floats in [0, 1] (`ToTensor`);
labels integers. fastdrop normalises on the device itself, so a transform must not end in `Normalize`
(its statistics go to `fit(..., stats=(mean, std))`; default: the training split's own).

Deterministic transforms are read once, by DataLoader workers, into today's in-memory uint8 `Split`
(floats are rounded to 1/255 steps, which is exact for `ToTensor` of an 8-bit image). Which transforms
are deterministic is decided explicitly, never guessed from the data: `deterministic=True/False` says so;
by default (None) a dataset counts as deterministic only when it is a torchvision VisionDataset (such as
ImageFolder) and every transform it applies is one of the known deterministic torchvision transforms (`KNOWN_DETERMINISTIC`, v1 and v2, inside Compose) and it has
no joint `transforms` or unknown `target_transform`; a TensorDataset has none, a Subset is its base's.
Anything else (a random transform, a custom `__getitem__`) streams. Before caching, item 0 is read twice
and must come back equal: a check that catches a wrong `deterministic=True`, not a proof.

A streamed split (`DatasetSplit`) reads its items through a DataLoader every epoch, so the transform
runs anew and random augmentation stays fresh; its labels are read once up front (the dataset's
`targets` where it has them). What Dropping's feature cache holds then: the cut units' outputs for the
one draw of the random transform made while the cache is built, so the head trains on that fixed view
(`RANDOM_CACHE_NOTE`); `strategy.cache.views=K` caches K draws, `strategy=freezing` keeps fresh ones.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from .containers import DataError, Split
from .subset import balanced_indices

KNOWN_DETERMINISTIC = ("Resize", "CenterCrop", "ToTensor", "PILToTensor", "ToImage", "ToDtype", "ToPureTensor",
                       "ConvertImageDtype", "Normalize", "Grayscale", "Pad", "Identity")
RANDOM_CACHE_NOTE = ("the dataset's transform is random: Dropping's cache holds the cut units' outputs for one draw "
                     "of it (made when the cache is built), so fresh augmentation stops at the first drop; "
                     "strategy.cache.views=K caches K draws, strategy=freezing keeps a fresh draw every epoch")


def is_known_deterministic(ds) -> bool:
    """Whether every transform `ds` applies is a known deterministic torchvision transform."""
    if isinstance(ds, Subset):
        return is_known_deterministic(ds.dataset)
    if isinstance(ds, TensorDataset):
        return True
    from torchvision.datasets import VisionDataset

    if not isinstance(ds, VisionDataset):
        return False  # a custom __getitem__: what it does is not known, whatever attributes it has
    joint = getattr(ds, "transforms", None)
    if joint is not None and type(joint).__name__ != "StandardTransform":
        return False
    return _known(ds.transform) and getattr(ds, "target_transform", None) is None


def _known(t) -> bool:
    if t is None:
        return True
    inner = getattr(t, "transforms", None)
    if type(t).__name__ == "Compose" and isinstance(inner, (list, tuple)):
        return all(_known(s) for s in inner)
    return type(t).__module__.startswith("torchvision.transforms") and type(t).__name__ in KNOWN_DETERMINISTIC


def _as_image(x, i: int) -> torch.Tensor:
    """Item i's image as a float tensor in 0..255 (uint8 kept exact), or DataError saying what is wrong."""
    if not isinstance(x, torch.Tensor):
        raise DataError(f"dataset item {i}: the image is a {type(x).__name__}, not a tensor [C, H, W]; add "
                        "transforms.PILToTensor() (or ToTensor()) to its transform")
    if x.dim() != 3:
        raise DataError(f"dataset item {i}: the image has shape {list(x.shape)}, not [C, H, W]")
    if x.dtype == torch.uint8:
        return x.float()
    if not x.is_floating_point():
        raise DataError(f"dataset item {i}: the image is {x.dtype}; give uint8 (0..255) or floats in [0, 1]")
    lo, hi = x.min().item(), x.max().item()
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise DataError(f"dataset item {i}: image values lie in [{lo:.3g}, {hi:.3g}], not [0, 1]: drop Normalize from "
                        "the transform (fastdrop normalises on the device; pass its mean/std as stats=(mean, std))")
    return x.clamp(0, 1) * 255.0


def _as_label(y, i: int) -> int:
    if isinstance(y, torch.Tensor) and y.numel() == 1 and not (y.is_floating_point() or y.dtype == torch.bool):
        return int(y.item())
    if isinstance(y, int) and not isinstance(y, bool) or type(y).__name__.startswith(("int", "uint")):
        return int(y)
    raise DataError(f"dataset item {i}: the label is {y!r} ({type(y).__name__}), not an integer class index")


class _Items(Dataset):
    """Item = a whole batch (a list of dataset indices): images of `shape` in 0..255 and their labels."""

    def __init__(self, ds, shape: tuple | None):
        self.ds, self.shape = ds, shape

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, idx):
        xs, ys = [], []
        for i in idx:
            x, y = self.ds[i]
            x = _as_image(x, i)
            if self.shape is not None and tuple(x.shape) != self.shape:
                raise DataError(f"dataset item {i}: image shape {list(x.shape)}, but item 0 has {list(self.shape)}; "
                                "give the transform a Resize and CenterCrop to one size")
            xs.append(x)
            ys.append(_as_label(y, i))
        return torch.stack(xs), torch.tensor(ys, dtype=torch.long)


def _read(ds, idx: list, shape: tuple, workers: int, seed: int = 0, batch: int = 256):
    """(images, labels) of `idx` in order, batch by batch, read by DataLoader workers."""
    chunks = [idx[s: s + batch] for s in range(0, len(idx), batch)]
    loader = DataLoader(_Items(ds, shape), sampler=chunks, batch_size=None, num_workers=workers,
                        generator=torch.Generator().manual_seed(seed))
    return iter(loader)


class DatasetSplit:
    """The items `rows` of a map-style dataset, read through a DataLoader each time (a streamed split:
    the same `fetch` / `batches` interface as StreamSplit), with their labels `y` read once."""
    streaming = True

    def __init__(self, ds, rows: torch.Tensor, y: torch.Tensor, shape: tuple, workers: int = 2,
                 device: torch.device | str = "cpu"):
        self.ds, self.rows, self.y, self.shape, self.workers = ds, rows, y, tuple(shape), workers
        self.device = torch.device(device)
        self.classes: tuple | None = None
        self._draws = 0  # one DataLoader seed per pass: random transforms differ from epoch to epoch

    def __len__(self):
        return len(self.y)

    @property
    def image_shape(self) -> tuple:
        return self.shape

    def _with(self, rows: torch.Tensor, y: torch.Tensor, device) -> "DatasetSplit":
        out = DatasetSplit(self.ds, rows, y, self.shape, self.workers, device)
        out.classes = self.classes
        return out

    def take(self, idx) -> "DatasetSplit":
        idx = torch.as_tensor(idx)
        return self._with(self.rows[idx.cpu()], self.y[idx.to(self.y.device)], self.device)

    def sample(self, n: int | None, seed: int = 0) -> "DatasetSplit":
        idx = balanced_indices(self.y, n, seed)
        return self if idx is None else self.take(idx)

    def to(self, device) -> "DatasetSplit":
        return self._with(self.rows, self.y.to(device), device)

    def _positions(self, idx) -> list:
        return self.rows[idx.cpu() if isinstance(idx, torch.Tensor) else idx].tolist()

    def fetch(self, idx) -> torch.Tensor:
        """One batch, read in this process (cache building, probes)."""
        return _Items(self.ds, self.shape)[self._positions(idx)][0].to(self.device)

    def batches(self, index_batches):
        self._draws += 1
        pin = self.device.type == "cuda"
        loader = DataLoader(_Items(self.ds, self.shape), sampler=[self._positions(i) for i in index_batches],
                            batch_size=None, num_workers=self.workers, pin_memory=pin,
                            generator=torch.Generator().manual_seed(self._draws))
        for xb, _ in loader:
            yield xb.to(self.device, non_blocking=pin)


def _base(ds):
    return _base(ds.dataset) if isinstance(ds, Subset) else ds


def _labels(ds) -> torch.Tensor | None:
    """The labels without reading the images, where the dataset lists them (`targets`), else None."""
    if isinstance(ds, Subset):
        base = _labels(ds.dataset)
        return None if base is None else base[torch.as_tensor(ds.indices, dtype=torch.long)]
    if isinstance(ds, TensorDataset) and len(ds.tensors) == 2:
        t = ds.tensors[1]
        return torch.tensor([_as_label(v, i) for i, v in enumerate(t)], dtype=torch.long)
    targets = getattr(ds, "targets", None)
    if targets is None or len(targets) != len(ds):
        return None
    return torch.tensor([_as_label(v, i) for i, v in enumerate(targets)], dtype=torch.long)


def checked_dataset(ds, what: str, deterministic: bool | None, workers: int) -> tuple:
    """(labels, image shape, deterministic) of a dataset, or DataError / TypeError before anything is read
    in bulk: not map-style, empty, item 0 not (image tensor, integer label), a wrong deterministic=True."""
    if not (hasattr(ds, "__getitem__") and hasattr(ds, "__len__")):
        raise TypeError(f"{what} must be a map-style torch.utils.data.Dataset (with __getitem__ and __len__), "
                        f"not {type(ds).__name__}")
    if len(ds) == 0:
        raise DataError(f"{what} is empty")
    item = ds[0]
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        raise DataError(f"{what} item 0 is a {type(item).__name__}, not an (image, label) pair")
    first = _as_image(item[0], 0)
    _as_label(item[1], 0)
    det = is_known_deterministic(ds) if deterministic is None else bool(deterministic)
    if det and not torch.equal(first, _as_image(ds[0][0], 0)):
        raise DataError(f"{what}: item 0 differs between two reads, so its transform is random; pass "
                        "deterministic=False (or leave it None) to stream it")
    y = _labels(ds)
    if y is None:  # one pass over the items, which also checks every shape and label
        idx = list(range(len(ds)))
        y = torch.cat([yb for _, yb in _read(ds, idx, tuple(first.shape), workers)])
    if y.min().item() < 0:
        raise DataError(f"{what}: labels must be class indices >= 0 (got {y.min().item()})")
    return y, tuple(first.shape), det


def make_split(ds, rows: torch.Tensor, y: torch.Tensor, shape: tuple, det: bool, workers: int):
    """The rows as an in-memory uint8 Split (deterministic: read once) or a streamed DatasetSplit."""
    if not det:
        return DatasetSplit(ds, rows, y, shape, workers)
    xs = [xb.round().to(torch.uint8) for xb, _ in _read(ds, rows.tolist(), shape, workers)]
    return Split(torch.cat(xs), y)


def default_name(ds) -> str:
    """The dataset's folder (`imagenette-mini` for <...>/imagenette-mini/train), else its class name."""
    root = getattr(_base(ds), "root", None)
    if isinstance(root, (str, Path)) and str(root):
        p = Path(root)
        return (p.parent.name if p.name in ("train", "val", "test") else p.name) or type(_base(ds)).__name__.lower()
    return type(_base(ds)).__name__.lower()


HOLDOUT = 0.1  # share of the dataset held out for testing when fit gets no test dataset


def from_datasets(train, test=None, *, deterministic: bool | None = None, stats: tuple | None = None,
                  train_subset: int | None = None, test_subset: int | None = None, subset_seed: int = 0,
                  workers: int = 2, name: str | None = None):
    """(ImageData, notes) from map-style datasets, everything checked before any bulk read. Without `test`,
    a seeded class-balanced HOLDOUT share of `train` is held out (deterministic datasets only: a random
    transform would evaluate on augmented images). `notes` are what the row must say about the input."""
    from .containers import ImageData
    from .folder import channel_stats

    y, shape, det = checked_dataset(train, "the training dataset", deterministic, workers)
    notes = [] if det else [RANDOM_CACHE_NOTE]
    rows = torch.arange(len(y))
    if test is None:
        if not det:
            raise DataError("the training dataset's transform is random (or not known to be deterministic), so no "
                            "test split can be held out of it: pass test=<a dataset with a deterministic transform> "
                            "(or deterministic=True if it is)")
        held = balanced_indices(y, max(1, round(HOLDOUT * len(y))), subset_seed)
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[held] = False
        test_ds, test_rows, test_y, test_det = train, held, y[held], det
        rows, y = rows[keep], y[keep]
        notes.append(f"no test dataset given: {len(held)} of the {len(keep)} items (class-balanced, data.subset_seed) "
                     "held out for testing")
    else:
        test_ds = test
        test_y, test_shape, test_det = checked_dataset(test, "the test dataset", deterministic, workers)
        if test_shape != shape:
            raise DataError(f"train and test images differ in [C, H, W]: {list(shape)} and {list(test_shape)}")
        test_rows = torch.arange(len(test_y))
    pick = balanced_indices(y, train_subset, subset_seed)
    rows, y = (rows, y) if pick is None else (rows[pick], y[pick])
    pick = balanced_indices(test_y, test_subset, subset_seed)
    test_rows, test_y = (test_rows, test_y) if pick is None else (test_rows[pick], test_y[pick])
    classes = getattr(_base(train), "classes", None)
    top = int(max(y.max().item(), test_y.max().item())) + 1
    classes = tuple(classes) if isinstance(classes, (list, tuple)) and len(classes) >= top else None
    tr = make_split(train, rows, y, shape, det, workers)
    te = make_split(test_ds, test_rows, test_y, shape, test_det, workers)
    tr.classes = te.classes = classes
    mean, std = stats if stats is not None else channel_stats(tr.sample(512, subset_seed))
    return ImageData(name or default_name(train), tr, te, tuple(mean), tuple(std),
                     num_classes=len(classes) if classes else top, classes=classes), notes
