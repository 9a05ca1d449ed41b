"""`autofreeze` (Liu et al. 2021, "AutoFreeze: Automatically Freezing Model Blocks to Accelerate
  Fine-tuning", code YuhanLiu11/AutoFreeze): per unit G = sum over its weights of |sum over the epoch's
  steps of g|; at each epoch end r = |G_prev - G| / G_prev, tau = median r over the head, and the leading
  units before the first with r >= tau are cut (decisions from the second epoch: G_prev is needed).

A peer of the paper's rule: Freezing and Dropping apply it exactly as they apply Learn&Drop; the math
is in fastdrop.policies.rules.
"""
from __future__ import annotations

from . import rules as fn
from .base import CutPolicy, Decision, Observation, _span, register_policy


@register_policy
class AutoFreeze(CutPolicy):
    name = "autofreeze"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.prev_g: dict[str, float] = {}

    def decide(self, obs: Observation) -> Decision:
        prev, self.prev_g = self.prev_g, dict(zip(obs.names, obs.g))
        if not obs.g or any(n not in prev for n in obs.names):
            return Decision(obs.n_cut, "wait", "autofreeze: needs the previous epoch's gradient norms")
        rates = fn.autofreeze_rates([prev[n] for n in obs.names], obs.g)
        n, tau = fn.autofreeze_cut(rates)
        if tau != tau:  # NaN
            return Decision(obs.n_cut, "keep", "autofreeze: kept: a gradient norm is not finite this epoch", 0)
        if not n:
            return Decision(obs.n_cut, "keep", f"autofreeze: {obs.names[0]} change rate {rates[0]:.3f} >= "
                            f"median {tau:.3f}", 0, level=tau)
        return Decision(obs.n_cut + n, "cut", f"autofreeze: cut {_span(obs.names, n)} (change rates < median "
                        f"{tau:.3f})", n, level=tau)

    def state_dict(self) -> dict:
        return {"prev_g": self.prev_g}

    def load_state_dict(self, sd: dict) -> None:
        self.prev_g = dict(sd.get("prev_g", {}))
