"""Freezing (the paper's baseline, after its reference [8]): the cut units stay in the forward pass with
fixed weights. Their batch norm runs in eval mode (frozen statistics) and they run under no_grad, so the
backward pass stops at the first trained unit (both done by the base class for every cut unit still run).
With frozen statistics this is the same function of the weights as Dropping, which only reorders when
the tail is evaluated."""
from ..registry import STRATEGIES
from .base import Strategy


# SGD and Freezing often coincide in the figures (same forward work, same parameter count): a dashed
# line keeps both visible.
@STRATEGIES.register(label="Freezing", color="tab:blue", style=dict(ls="--", lw=1.8, marker="s", ms=3))
class Freezing(Strategy):
    name = "freezing"
