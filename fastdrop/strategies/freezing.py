"""Freezing (the paper's baseline, after its reference [8]): the cut units stay in the forward pass with
fixed weights. Their batch norm runs in eval mode (frozen statistics) and they run under no_grad, so the
backward pass stops at the first trained unit. With frozen statistics this is the same function of the
weights as Dropping, which only reorders when the tail is evaluated."""
import torch

from .base import Strategy


class Freezing(Strategy):
    name = "freezing"

    def begin_epoch(self, epoch: int) -> float:
        t = super().begin_epoch(epoch)
        for u in self.chain.units[: self.n_cut]:
            u.eval()
        return t

    def forward(self, state: tuple) -> torch.Tensor:
        if self.n_cut:
            with torch.no_grad():
                state = self.chain.run(state, 0, self.n_cut)
        return self.chain.run(state, self.n_cut)[0]
