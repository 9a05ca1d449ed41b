"""Freezing (the paper's baseline, after its reference [8]): the cut units stay in the forward pass with
fixed weights. Their batch norm runs in eval mode (frozen statistics) and they run under no_grad, so the
backward pass stops at the first trained unit (both done by the base class for every cut unit still run).
With frozen statistics this is the same function of the weights as Dropping, which only reorders when
the tail is evaluated."""
from .base import Strategy


class Freezing(Strategy):
    name = "freezing"
