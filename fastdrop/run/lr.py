"""Learning-rate schedule as a pure function (Sect. 4.2: fixed, or divided by 10 after given epochs)."""
from __future__ import annotations

from typing import Sequence


def get_lr(epoch: int, base_lr: float, milestones: Sequence[int] = (), gamma: float = 0.1) -> float:
    """LR for 1-based `epoch`: base_lr * gamma^(number of milestones already passed).

    A milestone m means "after epoch m", so epoch m still uses the old rate and epoch m+1 the new one.
    """
    return base_lr * gamma ** sum(1 for m in milestones if epoch > m)
