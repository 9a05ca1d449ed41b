"""`linear` (Composer's LayerFreezing, mosaicml/composer): from `strategy.linear_start` (0.5) of the run,
  int(share x units) leading units cut, the share growing linearly to all of them at the end. No score:
  the control any scored rule must beat.

A peer of the paper's rule: Freezing and Dropping apply it exactly as they apply Learn&Drop; the math
is in fastdrop.policies.rules.
"""
from __future__ import annotations

from . import rules as fn
from .base import CutPolicy, Decision, Observation, cut_to, register_policy, run_progress


@register_policy
class Linear(CutPolicy):
    name = "linear"
    uses_scores = False

    def decide(self, obs: Observation) -> Decision:
        n_conv = obs.n_cut + len(obs.names)
        n = fn.linear_cut(run_progress(obs), self.cfg.linear_start, n_conv + 1, n_conv)
        return cut_to(obs, n, f"linear from {self.cfg.linear_start:g} of the run ({run_progress(obs):.3f} now)")
