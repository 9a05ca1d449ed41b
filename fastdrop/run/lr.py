"""Learning-rate schedule as a pure function (Sect. 4.2: fixed, or divided by 10 after given epochs; or a
per-epoch cosine from the base rate towards 0, the schedule FreezeOut's units follow, for sgd and any policy)."""
from __future__ import annotations

import math
from typing import Sequence


def get_lr(epoch: int, base_lr: float, milestones: Sequence[int] = (), gamma: float = 0.1,
           schedule: str = "step", epochs: int | None = None) -> float:
    """LR for 1-based `epoch`. step: base_lr * gamma^(number of milestones already passed); a milestone m
    means "after epoch m", so epoch m still uses the old rate and epoch m+1 the new one. cosine:
    base_lr * (1 + cos(pi (epoch - 1) / epochs)) / 2, so epoch 1 trains at base_lr and the rate would reach
    0 one epoch after the last (the last epoch still learns)."""
    if schedule == "cosine":
        return base_lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))
    return base_lr * gamma ** sum(1 for m in milestones if epoch > m)
