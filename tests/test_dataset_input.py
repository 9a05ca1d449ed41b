"""Datasets as inputs (fastdrop/data/dataset_input.py): fit takes a map-style Dataset of (image, label);
known deterministic transforms are read once into a uint8 split, anything else streams through a
DataLoader, and a bad dataset is refused before anything is written."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from torchvision import transforms as T

from fastdrop.api import fit
from fastdrop.data import DataError, Split
from fastdrop.data.dataset_input import RANDOM_CACHE_NOTE, DatasetSplit, from_datasets, is_known_deterministic

IMAGENETTE = next((p for p in (SHARED_DATA / "imagenette-mini", Path("/tmp/data/imagenette-mini"))
                   if (p / "train").is_dir()), None)


class Images(Dataset):
    """A user's own dataset: float images in [0, 1] through an optional transform, integer labels."""

    def __init__(self, n=24, size=16, transform=None, label=int, image=None):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, 3, size, size, generator=g)
        self.transform, self.label, self.image = transform, label, image

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i] if self.transform is None else self.transform(self.x[i])
        return (x if self.image is None else self.image(x, i)), self.label(i % 4)


def net(k=4):
    return nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
                         nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, k))


def quick(tmp_path, *extra):
    return ["progress=false", f"results_dir={tmp_path}/results", "epochs=2", "batch_size=8", "device=cpu",
            "data.workers=0", "checkpoint=none", "strategy.policy=schedule", "strategy.schedule={1:1}", *extra]


def test_which_transforms_count_as_deterministic():
    from torchvision.datasets import FakeData

    def fake(transform, target_transform=None):
        return FakeData(4, (3, 8, 8), transform=transform, target_transform=target_transform)

    fixed = T.Compose([T.Resize(8), T.CenterCrop(8), T.ToTensor(), T.Normalize((0.5,), (0.5,))])
    assert is_known_deterministic(fake(fixed)) and is_known_deterministic(fake(None))
    assert not is_known_deterministic(fake(T.Compose([T.RandomCrop(8), T.ToTensor()])))
    assert not is_known_deterministic(fake(fixed, target_transform=lambda y: y))  # unknown callable
    assert not is_known_deterministic(Images())  # a custom __getitem__, even with a transform attribute
    assert is_known_deterministic(TensorDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2)))


def test_deterministic_dataset_is_cached_as_uint8_and_trains(tmp_path):
    ds = Images()
    data, notes = from_datasets(ds, Images(n=8), deterministic=True, workers=0)
    assert isinstance(data.train, Split) and data.train.x.dtype == torch.uint8 and data.num_classes == 4
    assert torch.equal(data.train.x[3], (ds.x[3] * 255).round().to(torch.uint8)) and notes == []
    torch.manual_seed(0)
    row = fit(net(), ds, "strategy=dropping", *quick(tmp_path), test=Images(n=8), deterministic=True)
    assert row["status"] == "completed" and row["history"][-1]["dropped_units"] == ["conv0"]


def test_random_transform_streams_fresh_draws_and_says_what_the_cache_holds(tmp_path):
    ds = Images(transform=T.RandomHorizontalFlip())
    data, notes = from_datasets(ds, Images(n=8), workers=0)
    assert isinstance(data.train, DatasetSplit) and RANDOM_CACHE_NOTE in notes
    draws = [torch.cat(list(data.train.batches([torch.arange(24)]))) for _ in range(4)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])  # the transform runs anew each pass
    with pytest.raises(DataError, match="differs between two reads"):
        from_datasets(Images(transform=T.RandomHorizontalFlip(1.0), image=lambda x, i: x * torch.rand(())),
                      deterministic=True, workers=0)
    with pytest.raises(DataError, match="pass test="):
        from_datasets(ds, workers=0)  # no held-out test split of augmented images
    torch.manual_seed(0)
    row = fit(net(), ds, "strategy=dropping", *quick(tmp_path), test=Images(n=8))
    assert row["status"] == "completed" and RANDOM_CACHE_NOTE in row["warnings"]


@pytest.mark.parametrize("ds, match", [
    (Images(n=0), "is empty"),
    (Images(image=lambda x, i: T.ToPILImage()(x)), "add transforms.PILToTensor"),
    (Images(label=float), "not an integer class index"),
    (Images(image=lambda x, i: x[0]), r"not \[C, H, W\]"),
    (Images(image=lambda x, i: x[:, :8] if i == 5 else x), r"item 5: image shape \[3, 8, 16\]"),
    (Images(transform=T.Normalize((0.5,) * 3, (0.1,) * 3)), "drop Normalize"),
    ([1, 2, 3], "not an \\(image, label\\) pair"),
])
def test_bad_datasets_are_refused_before_anything_is_written(tmp_path, ds, match):
    with pytest.raises((DataError, TypeError), match=match) as e:
        fit(net(), ds, *quick(tmp_path), run_dir=tmp_path / "run")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "results").exists() and not (tmp_path / "run").exists()


@pytest.mark.skipif(IMAGENETTE is None, reason="imagenette-mini not present")
def test_fit_on_an_imagefolder_of_imagenette(tmp_path):
    import torchvision

    t = T.Compose([T.Resize(36), T.CenterCrop(32), T.PILToTensor()])
    ds = torchvision.datasets.ImageFolder(str(IMAGENETTE / "train"), transform=t)
    torch.manual_seed(0)
    row = fit(net(10), ds, "strategy=dropping", *quick(tmp_path, "data.train_subset=64", "data.test_subset=16"))
    assert row["status"] == "completed" and row["data"] == "imagenette-mini"
    assert row["classes"] == ds.classes and len(ds.classes) == 10
    assert row["history"][-1]["dropped_units"] == ["conv0"]
