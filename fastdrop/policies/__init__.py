"""Cut policies: what decides, at the end of each epoch, how many leading units a strategy cuts.

One module per policy, each registered by its `strategy.policy` name in fastdrop.registry.POLICIES;
the pure rules they compute with are in `rules` (no torch), the gradient scores P_l in `scores`.
Imported in registration order: the order the bench and the report list the policies in.
"""
from ..registry import POLICIES
from .base import CutPolicy, Decision, Observation, make_policy, register_policy
from . import cut_schedule  # noqa: F401,I001  (registers: schedule)
from . import learn_and_drop  # noqa: F401  (the paper's rule)
from . import noise_level  # noqa: F401  (ours, opt-in)
from . import freezeout  # noqa: F401  (the peers: FreezeOut, AutoFreeze, Composer's linear freezing)
from . import autofreeze  # noqa: F401
from . import linear  # noqa: F401
from . import drift  # noqa: F401  (ours)

__all__ = ["POLICIES", "CutPolicy", "Decision", "Observation", "make_policy", "register_policy"]
