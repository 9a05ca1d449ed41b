"""Class-balanced subsets (fastdrop.data.subset) on hand-made label vectors, and what the row says."""
from __future__ import annotations

import torch

from fastdrop.api import fit
from fastdrop.data import ImageData, Split
from fastdrop.data.subset import balanced_indices, class_counts


def test_equal_shares_then_leftovers_to_classes_that_still_have_rows():
    y = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    idx = balanced_indices(y, 5, seed=0)
    assert torch.bincount(y[idx]).tolist() == [2, 2, 1]  # class 2 has one row; its share goes to 0 and 1
    assert idx.tolist() == sorted(idx.tolist())  # the split's own order


def test_leftover_rows_go_to_a_seeded_pick_of_classes():
    y = torch.arange(12) % 4  # 3 rows of each of 4 classes
    counts = [torch.bincount(y[balanced_indices(y, 6, seed=s)], minlength=4).tolist() for s in range(8)]
    assert all(sorted(c) == [1, 1, 2, 2] for c in counts)
    assert len({tuple(c) for c in counts}) > 1  # not always the same classes
    assert torch.equal(balanced_indices(y, 6, seed=3), balanced_indices(y, 6, seed=3))


def test_no_subset_or_one_larger_than_the_split_keeps_every_row():
    y = torch.tensor([1, 0, 1])
    assert balanced_indices(y, None) is None and balanced_indices(y, 3) is None and balanced_indices(y, 10) is None
    assert class_counts(y, 3) == [1, 2, 0]


def test_row_records_class_counts_and_warns_on_a_single_class(tmp_path, caplog):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=g)
    seq = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))
    data = ImageData("one-class", Split(x, torch.zeros(40, dtype=torch.long)),
                     Split(x[:10], torch.tensor([0, 1] * 5)), mean=(0.5,), std=(0.25,))
    row = fit(seq, data, "epochs=1", "batch_size=16", "progress=false", "device=cpu",
              f"results_dir={tmp_path}", run_dir=tmp_path / "run")
    assert row["train_class_counts"] == [40] + [0] * 9 and row["test_class_counts"] == [5, 5] + [0] * 8
    assert any("train split holds fewer than two classes" in w for w in row["warnings"])
    assert not any("test split" in w for w in row["warnings"])
    assert "fewer than two classes" in caplog.text


def test_odd_sizes_warn_in_the_log_and_the_row(tmp_path, small_cfg, caplog):
    """Issue 22: 3 training images for 10 classes, and a batch larger than the training split, ran silently."""
    from fastdrop.run.trainer import Trainer

    row = Trainer(small_cfg(extra={"data.train_subset": 3, "batch_size": 100000, "epochs": 1}), tmp_path / "run").fit()
    assert sum(c > 0 for c in row["train_class_counts"]) <= 3
    unseen = sum(c == 0 for c in row["train_class_counts"])
    assert f"the train split holds 3 images for 10 classes: {unseen} classes have no training image " \
           "(data.train_subset=3)" in row["warnings"]
    assert "batch_size 100000 >= the 3 training images: one optimiser step per epoch" in row["warnings"]
    assert "one optimiser step per epoch" in caplog.text and "have no training image" in caplog.text
    row = Trainer(small_cfg(), tmp_path / "tiny").fit()  # the usual tiny test run: 256 images, batch 64
    assert not any("training image" in w for w in row["warnings"])
