"""Plain SGD: every unit trains every epoch; scores are still computed and logged (Figs. 1 and 3). It is
the baseline every other strategy's time saving is measured against (`baseline=True`)."""
from ..registry import STRATEGIES
from .base import Strategy


@STRATEGIES.register(label="SGD", color="tab:red", style=dict(ls="-", lw=2.8, marker="o", ms=4), baseline=True)
class SGD(Strategy):
    name = "sgd"
    cuts = False
