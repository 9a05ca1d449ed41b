"""`schedule`: fixed cuts {epoch: leading units cut from then on} (the paper's reference [8]), given as
`strategy.schedule` (the cut schedule; the learning-rate schedule is fastdrop.run.lr). `{0: n_conv}` cuts
every conv unit before training: a linear probe."""
from __future__ import annotations

from . import rules as fn
from .base import CutPolicy, Decision, Observation, _span, register_policy


@register_policy
class CutSchedule(CutPolicy):
    name = "schedule"
    uses_scores = False
    uses_schedule = True

    def before_training(self, n_cut: int, n_conv: int) -> int:
        return fn.schedule_cut(fn.parse_schedule(self.cfg.schedule), 0, n_cut, n_conv)

    @classmethod
    def config_problems(cls, s) -> list[str]:
        if s.schedule is None:
            return ["strategy.policy=schedule needs strategy.schedule, e.g. 'strategy.schedule={2:3,4:6}' "
                    "(without one nothing is ever cut)"]
        return []

    def decide(self, obs: Observation) -> Decision:
        n_conv = obs.n_cut + len(obs.names)
        new = fn.schedule_cut(fn.parse_schedule(self.cfg.schedule), obs.epoch, obs.n_cut, n_conv)
        if new > obs.n_cut:
            return Decision(new, "cut", f"schedule: cut {_span(obs.names, new - obs.n_cut)}")
        return Decision(obs.n_cut, "keep", "schedule: no cut at this epoch")
