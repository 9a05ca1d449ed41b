"""Plain SGD: every unit trains every epoch; scores are still computed and logged (Figs. 1 and 3)."""
from .base import Strategy


class SGD(Strategy):
    name = "sgd"
    cuts = False
