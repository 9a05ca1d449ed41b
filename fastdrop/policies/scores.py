"""Per-unit gradient statistics accumulated over an epoch, for Eqs. 1 and 2.

For each scored weight tensor we keep S = sum_j g_j and A = sum_j |g_j| on the parameter's device, updated
after every backward with two foreach ops (no host sync). `finish()` reduces them per unit with a single
host transfer at the end of the epoch.
"""
from __future__ import annotations

import torch

from .rules import aapd, layer_score


class ScoreAccumulator:
    def __init__(self, units_weights: list[list[torch.nn.Parameter]]):
        self.units = units_weights
        self.weights = [w for ws in units_weights for w in ws]
        self.owner = [u for u, ws in enumerate(units_weights) for _ in ws]
        self.S = [torch.zeros_like(w, memory_format=torch.contiguous_format) for w in self.weights]
        self.A = [torch.zeros_like(w, memory_format=torch.contiguous_format) for w in self.weights]
        self.steps = 0
        self.last_abs_s: list[float] = []  # per unit, sum of |S| at the last finish() (AutoFreeze's G)

    def reset(self):
        if not self.weights:  # every conv unit cut (a linear probe): nothing to score; foreach ops refuse []
            return
        torch._foreach_zero_(self.S)
        torch._foreach_zero_(self.A)
        self.steps = 0

    def accumulate(self):
        grads = [w.grad for w in self.weights]
        if not grads or any(g is None for g in grads):
            return
        torch._foreach_add_(self.S, grads)
        torch._foreach_add_(self.A, torch._foreach_abs(grads))
        self.steps += 1

    def finish(self) -> tuple[list[float], list[float]]:
        """(P_l, AAPD_l) per unit for the epoch just ended."""
        n = len(self.units)
        if not self.weights:
            return [], []
        dev = self.S[0].device
        abs_s = torch.stack([s.abs().sum(dtype=torch.float64) for s in self.S]).to(dev)
        a = torch.stack([x.sum(dtype=torch.float64) for x in self.A]).to(dev)
        owner = torch.tensor(self.owner, device=dev)
        per_abs_s = torch.zeros(n, dtype=torch.float64, device=dev).index_add_(0, owner, abs_s)
        per_a = torch.zeros(n, dtype=torch.float64, device=dev).index_add_(0, owner, a)
        per_abs_s, per_a = per_abs_s.tolist(), per_a.tolist()
        self.last_abs_s = per_abs_s
        numel = [sum(w.numel() for w in ws) for ws in self.units]
        p = [layer_score(s, x) for s, x in zip(per_abs_s, per_a)]
        return p, [aapd(x, k) for x, k in zip(per_a, numel)]
