"""A network as an ordered chain of units, the object Learn&Drop cuts (paper Sect. 3.2, Figs. 2 and 4).

Every unit owns exactly one convolution layer (with the BN, ReLU and pooling that follow it); the last
unit is the classifier. Units map a *state* to a state, where a state is a tuple of tensors: one tensor
between plain layers, two inside a residual block (the branch activation and the skip tensor), so the
chain can be cut between any two convolutions, also in the middle of a ResNet block (Fig. 4). Freezing
and Dropping only ever say "units [0, n) are cut", whatever the network is.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

State = tuple  # tuple[torch.Tensor, ...]


class Unit(nn.Module):
    """One step of the chain. Subclasses implement `forward(state) -> state`."""

    def conv_weights(self) -> list[nn.Parameter]:
        """The convolution weights whose gradients score this unit (Eq. 2)."""
        return [m.weight for m in self.modules() if isinstance(m, nn.modules.conv._ConvNd)]


class SeqUnit(Unit):
    """A plain stack of layers acting on a single-tensor state."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, state: State) -> State:
        (x,) = state
        return (self.body(x),)


class Chain(nn.Module):
    """Ordered units; `units[:-1]` are conv units (the ones that can be cut), `units[-1]` the classifier."""

    def __init__(self, units: Sequence[Unit], names: Sequence[str]):
        super().__init__()
        if len(units) != len(names) or len(units) < 2:
            raise ValueError("a chain needs at least one conv unit and a classifier, with one name each")
        self.units = nn.ModuleList(units)
        self.names = list(names)
        for u, n in zip(units[:-1], names[:-1]):
            if not u.conv_weights():
                raise ValueError(f"unit {n!r} holds no convolution; every unit but the classifier must")

    @property
    def n_conv(self) -> int:
        return len(self.units) - 1

    def run(self, state: State, start: int = 0, end: int | None = None) -> State:
        for u in self.units[start:end]:
            state = u(state)
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run((x,))[0]

    def unit_parameters(self, start: int = 0, end: int | None = None) -> Iterable[nn.Parameter]:
        for u in self.units[start:end]:
            yield from u.parameters()

    def unit_groups(self) -> list[dict]:
        """One optimiser parameter group per unit, in chain order: what a per-unit-rate policy sets."""
        return [{"params": list(u.parameters())} for u in self.units]


_HEAD_START = (nn.Flatten, nn.Linear, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _starts_head(m: nn.Module) -> bool:
    """A classifier starts here: a Flatten, Linear or adaptive pool, or an nn.Sequential whose first
    layer does (such as Sequential(AdaptiveAvgPool2d(1), Flatten(), Linear(c, k)))."""
    if isinstance(m, _HEAD_START):
        return True
    return isinstance(m, nn.Sequential) and len(m) > 0 and _starts_head(m[0])


def as_chain(model: nn.Module, names: Sequence[str] | None = None) -> Chain:
    """Make a user's `nn.Sequential` of conv blocks into a chain (the fine-tuning use case).

    Each child that contains a convolution starts a new unit; children without one (pooling, dropout)
    join the unit before them; the classifier starts at the first Flatten, Linear or adaptive pool after
    the last convolution, or at the first nn.Sequential there that starts with one.
    """
    if isinstance(model, Chain):
        return model
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"as_chain takes an nn.Sequential of conv blocks (or a Chain), not {type(model).__name__}")

    def has_conv(m):
        return any(isinstance(x, nn.modules.conv._ConvNd) for x in m.modules())

    groups: list[list[nn.Module]] = []
    lead: list[nn.Module] = []
    for child in model.children():
        if has_conv(child):
            groups.append(lead + [child])
            lead = []
        elif groups:
            groups[-1].append(child)
        else:
            lead.append(child)  # e.g. a normalisation layer before the first conv
    if not groups:
        raise ValueError("the Sequential holds no convolution: nothing to score or drop")
    # The classifier starts at the first flatten / linear / global pool after the last convolution; the
    # BN, ReLU and pooling right after that convolution stay in its unit (as in vgg_chain).
    last = groups[-1]
    k = max(i for i, m in enumerate(last) if has_conv(m))
    cut = next((i for i in range(k + 1, len(last)) if _starts_head(last[i])), None)
    if cut is None:
        after = ", ".join(type(m).__name__ for m in last[k + 1:]) or "nothing"
        raise ValueError("the Sequential has no classifier after its last convolution: expected a later child "
                         "that is a Flatten, Linear, AdaptiveAvgPool2d or AdaptiveMaxPool2d, or an nn.Sequential "
                         "starting with one (the child holding the last conv must not also hold the classifier); "
                         f"after the last conv block come: {after}")
    groups[-1], tail = last[:cut], last[cut:]
    units = [SeqUnit(*g) for g in groups] + [SeqUnit(*tail)]
    names = list(names) if names else [f"conv{i}" for i in range(len(groups))] + ["classifier"]
    return Chain(units, names)
