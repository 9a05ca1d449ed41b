"""Training strategies by config name, from the strategy registry (`fastdrop.registry.STRATEGIES`):
`sgd`, `freezing`, `dropping` (paper Sect. 3 and 4.3). A strategy is a `Strategy` subclass registered
beside its code with its report `label`, figure `color` and `style` (and `baseline=True` for the one
time savings are measured against); the trainer only calls its hooks."""
from ..registry import STRATEGIES
from .base import RunContext, Strategy
# Imported in the order tables and figures list the strategies.
from .sgd import SGD
from .freezing import Freezing
from .dropping import Dropping
from . import cache  # noqa: F401  (registers the cache backends)


def baseline() -> str:
    """The strategy time savings are measured against (registered with baseline=True)."""
    return next(s for s in STRATEGIES if STRATEGIES.attr(s, "baseline"))


def table3_strategy() -> str:
    """The strategy whose forward work the paper's Table 3 compares with the baseline's (table3=True)."""
    return next(s for s in STRATEGIES if STRATEGIES.attr(s, "table3"))


__all__ = ["RunContext", "Strategy", "SGD", "Freezing", "Dropping", "STRATEGIES", "baseline", "table3_strategy"]
