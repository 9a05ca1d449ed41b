"""A toy strategy: Freezing that also counts its batches (a hook the trainer calls, unaware of which)."""
from fastdrop.strategies import STRATEGIES
from fastdrop.strategies.freezing import Freezing


@STRATEGIES.register(label="Toy", color="tab:purple", style=dict(ls=":"))
class ToyStrategy(Freezing):
    name = "toy_strategy"
    steps = 0

    def after_backward(self) -> None:
        super().after_backward()
        type(self).steps += 1
