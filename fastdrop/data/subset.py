"""Subsets that hold every class: `data.train_subset` / `data.test_subset` draw a seeded, class-balanced
sample instead of the first N rows (folder datasets are sorted by class, so the first N rows of the
CIFAR-10 JPEG copy or Imagenette are one class). Each class gets floor(N/K) rows, or all it has; rows
left over go, one each, to the classes that still have rows, in a seeded order. The chosen rows keep
the split's own order (a mixed split such as the bundled MNIST subset stays mixed), and the same
`data.subset_seed` gives the same rows whatever the run's training seed.
"""
from __future__ import annotations

import torch


def balanced_indices(y: torch.Tensor, n: int | None, seed: int = 0) -> torch.Tensor | None:
    """Row indices of a class-balanced sample of n rows of labels `y` (None: keep every row)."""
    if n is None or n >= len(y):
        return None
    g = torch.Generator().manual_seed(seed)
    y = y.cpu()
    classes = torch.unique(y)
    pools = [torch.nonzero(y == c).flatten() for c in classes]
    pools = [p[torch.randperm(len(p), generator=g)] for p in pools]  # which rows of each class
    quota = [0] * len(pools)
    left = n
    while left > 0:
        open_ = [i for i, p in enumerate(pools) if quota[i] < len(p)]
        share = left // len(open_)
        if share == 0:  # fewer rows left than classes still open: a seeded pick of which get one more
            for j in torch.randperm(len(open_), generator=g)[:left].tolist():
                quota[open_[j]] += 1
            break
        for i in open_:
            take = min(share, len(pools[i]) - quota[i])
            quota[i] += take
            left -= take
    chosen = torch.cat([p[:q] for p, q in zip(pools, quota)])
    return torch.sort(chosen).values


def class_counts(y: torch.Tensor, num_classes: int) -> list[int]:
    return torch.bincount(y.cpu(), minlength=num_classes).tolist()
