"""Forward work per unit, counted by torch.utils.flop_counter on one sample (no hand formulas).

FlopCounterMode reports FLOPs with a multiply-add counted as 2; we store MACs (= FLOPs / 2) per unit,
per sample, once per run: a unit's cost does not change when others are cut, so the work executed in any
epoch is the sum over the units that actually run in that epoch's training forward pass.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..models import Chain


def unit_macs(chain: Chain, sample: torch.Tensor) -> list[int]:
    """Forward MACs per sample of every unit, measured in eval mode on `sample` ([1, C, H, W])."""
    was_training = chain.training
    chain.eval()
    out = []
    state = (sample,)
    with torch.no_grad():
        for u in chain.units:
            with FlopCounterMode(display=False) as fc:
                state = u(state)
            out.append(int(fc.get_total_flops()) // 2)
    chain.train(was_training)
    return out
