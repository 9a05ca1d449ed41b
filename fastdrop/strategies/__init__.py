"""Training strategies: `sgd`, `freezing`, `dropping` (paper Sect. 3 and 4.3), by config name."""
from .base import RunContext, Strategy
from .dropping import Dropping
from .freezing import Freezing
from .sgd import SGD

STRATEGIES = {"sgd": SGD, "freezing": Freezing, "dropping": Dropping}

__all__ = ["RunContext", "Strategy", "SGD", "Freezing", "Dropping", "STRATEGIES"]
