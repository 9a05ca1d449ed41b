"""Learn&Drop where users already train: the engine a plain PyTorch loop drives (`LearnAndDrop`, see
engine/core.py for a runnable example) and the Dataset helpers drop mode needs (`Indexed`,
`transform_is_random`). The Lightning callback, fastdrop.lightning.LearnAndDrop, drives the same engine."""
from .core import MODES, LearnAndDrop, prune, strategy_config
from .rates import unit_param_groups
from .datasets import DatasetData, Indexed, transform_is_random

__all__ = ["MODES", "DatasetData", "Indexed", "LearnAndDrop", "prune", "strategy_config", "transform_is_random",
           "unit_param_groups"]
