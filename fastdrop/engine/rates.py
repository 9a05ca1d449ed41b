"""Per-unit learning rates in a loop whose optimiser the engine did not build (FreezeOut's cosines,
drift's cooling): which unit each optimiser group trains, and the rates a step runs at, set before it
and put back after it so that a scheduler only ever sees its own."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..models import Chain, chain_of


def unit_param_groups(model: nn.Module) -> list[dict]:
    """One optimiser group per unit of `model` (as `fastdrop.models.chain_of` cuts it), for a policy that
    sets a learning rate per unit where the optimiser is built before the engine, as in a
    LightningModule's configure_optimizers: SGD(unit_param_groups(self.model), lr=...)."""
    return chain_of(model).unit_groups()


def epoch_lr(optimizer: torch.optim.Optimizer | None) -> float:
    """The rate the policy is told an epoch ran at: the optimiser's highest group rate (NaN without one)."""
    return max((g["lr"] for g in optimizer.param_groups), default=math.nan) if optimizer is not None else math.nan


class UnitRates:
    """unit_lrs(progress, base_lr, epoch_lr): the engine's per-unit rates (None: the schedule's hold)."""

    def __init__(self, chain: Chain, policy: str, unit_lrs: Callable):
        self.chain, self.policy, self.unit_lrs = chain, policy, unit_lrs
        self._groups: dict[int, list] = {}  # per optimiser: (group, unit, initial rate)
        self._saved: list[tuple[dict, float, float]] = []  # (group, scheduled rate, the rate set() gave it)

    def groups(self, optimizer: torch.optim.Optimizer) -> list[tuple[dict, int, float]]:
        """(group, its unit, its initial rate) for each group of `optimizer` that holds unit parameters;
        refuses a group that holds two units' parameters (their rates could not be set apart)."""
        key = id(optimizer.param_groups)  # a wrapper (Lightning's) shares its optimiser's list
        if key not in self._groups:
            unit = {id(p): i for i, u in enumerate(self.chain.units) for p in u.parameters()}
            out = []
            for g in optimizer.param_groups:
                units = sorted({unit[id(p)] for p in g["params"] if id(p) in unit})
                if len(units) > 1:
                    raise ValueError(f"policy {self.policy!r} sets a learning rate per unit, but an optimiser group "
                                     f"holds {', '.join(self.chain.names[i] for i in units)}: build the optimiser "
                                     "from fastdrop.engine.unit_param_groups(model) (a group per unit)")
                if units:  # a scheduler's initial_lr, else the rate the group has when first seen
                    out.append((g, units[0], g.get("initial_lr", g["lr"])))
            self._groups[key] = out
        return self._groups[key]

    def set(self, optimizer: torch.optim.Optimizer, progress: float) -> None:
        self.restore()  # a second optimiser's step starts from the schedule's rates too
        for g, u, base in self.groups(optimizer):
            lrs = self.unit_lrs(progress, base, g["lr"])
            if lrs is None:  # the schedule's rate holds for every unit (drift before it cools one)
                return
            self._saved.append((g, g["lr"], lrs[u]))
            g["lr"] = lrs[u]

    def restore(self) -> None:
        """Put the scheduled rates back. A scheduler that stepped in between (an epoch's last step that AMP
        skipped runs no post-step hook, and Lightning then steps the scheduler on the rate set() left)
        scaled that rate: the same factor goes onto the scheduled one, so its decay is not lost."""
        for g, lr, given in reversed(self._saved):
            g["lr"] = lr * g["lr"] / given if given > 0 and g["lr"] != given else lr
        self._saved = []
