"""A user's map-style Dataset in the shape the strategies read (fastdrop.strategies), and the helpers a
loop needs for Dropping: sample indices in each batch, and whether the training transform is random.

The strategies read training images through `data.train.fetch(idx)` and `data.normalize(x, dtype)`
(ImageData: uint8 rows, normalised per batch). `DatasetData` gives them the same two calls over any
Dataset whose items start with an image tensor that is already normalised, so the drift probe and the
feature cache see exactly what the user's model sees. Only the first element of an item is read.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from ..data import ImageData


class Indexed(Dataset):
    """`dataset` with each item's index appended: (x, y) -> (x, y, index). Dropping serves the cut units'
    cached outputs by sample index, so a loop in drop mode reads its batches as `for x, y, index in loader`."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        item = self.dataset[i]
        return (*item, i) if isinstance(item, (tuple, list)) else (item, i)


def _image(item) -> torch.Tensor:
    x = item[0] if isinstance(item, (tuple, list)) else item
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"dataset items must start with an image tensor (add transforms.ToTensor()), not {type(x).__name__}")
    return x


class _DatasetSplit:
    """`Split`'s read interface (len, fetch, y) over a Dataset; `y` only carries the length and device
    (the engine never asks a strategy for its own batches: the user's loop brings them)."""
    streaming = False

    def __init__(self, dataset):
        self.dataset = dataset
        self.y = torch.zeros(len(dataset), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.dataset)

    def fetch(self, idx) -> torch.Tensor:
        rows = range(len(self))[idx] if isinstance(idx, slice) else torch.as_tensor(idx).tolist()
        return torch.stack([_image(self.dataset[i]) for i in rows])

    @property
    def image_shape(self) -> tuple:
        return tuple(_image(self.dataset[0]).shape)


@dataclass
class DatasetData:
    """The training Dataset as the strategies see it (see the module docstring)."""
    train: _DatasetSplit
    num_classes: int
    device: torch.device = torch.device("cpu")  # where the model runs: fetched images go there
    name: str = "dataset"
    augment = False  # the user's loop augments; the cache's own views (`views=K`) need no flag
    streaming = False
    random_crop_flip = ImageData.random_crop_flip  # the cache's views, built from the stored image

    @classmethod
    def of(cls, dataset, num_classes: int, device=None) -> "DatasetData":
        if len(dataset) == 0:
            raise ValueError("the training dataset is empty")
        return cls(_DatasetSplit(dataset), num_classes, torch.device(device or "cpu"), type(dataset).__name__)

    def normalize(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return x.to(self.device, dtype)  # the dataset's transform already normalised it


class NoData:
    """For freeze mode with a policy that reads only gradients and the loss: no images needed."""
    augment = False
    streaming = False

    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def __getattr__(self, name):  # train, normalize, ...: only what needs the images reaches here
        if name.startswith("__"):
            raise AttributeError(name)
        raise ValueError("this needs the training images: pass data=<your training Dataset> to LearnAndDrop "
                         "(the drift policy probes unit outputs on them, drop mode caches them)")


def as_data(data, num_classes: int, device=None):
    """ImageData as is; a Dataset wrapped (its images go to `device`); None -> NoData."""
    if data is None:
        return NoData(num_classes)
    if isinstance(data, (ImageData, DatasetData)):
        return data
    if isinstance(data, Indexed):
        data = data.dataset
    return DatasetData.of(data, num_classes, device)


def transform_is_random(dataset, tries: int = 16) -> bool:
    """Whether reading the first item again gives a different image (a random training transform): up to
    `tries` reads, each under its own fixed seed of torch and Python's random (a flip with p=0.5 shows
    within 16 reads but for 2**-15); the caller's RNG states are left as they were."""
    if len(dataset) == 0:
        return False
    state = random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            first = None
            for s in range(tries):
                torch.manual_seed(1234 + s)
                random.seed(1234 + s)
                x = _image(dataset[0])
                if first is None:
                    first = x
                elif x.shape != first.shape or not torch.equal(x, first):
                    return True
            return False
    finally:
        random.setstate(state)
