"""`freezeout` (Brock et al. 2017, "FreezeOut: Accelerate Training by Progressively Freezing Layers",
  code ajbrock/FreezeOut): unit i of units 0..L freezes at the share r_i = f(t0 + (1 - t0) i / L) of the
  run (`strategy.freezeout_shape` linear | squared | cubic, `strategy.freezeout_t0`); until then its own
  learning rate follows a cosine from lr0_i to 0 at r_i, lr0_i = lr / r_i when
  `strategy.freezeout_scale_lr` (the paper's defaults: scaled cubic with t0 = 0.8; unscaled linear with
  t0 = 0.5). The per-unit rates replace `optim.milestones`. FreezeOut freezes per step; here a unit is
  cut at the end of the epoch in which its rate reached 0, so nothing it would have learnt is lost.

A peer of the paper's rule: Freezing and Dropping apply it exactly as they apply Learn&Drop; the math
is in fastdrop.policies.rules.
"""
from __future__ import annotations

from . import rules as fn
from .base import CutPolicy, Decision, Observation, cut_to, register_policy, run_progress


@register_policy
class FreezeOut(CutPolicy):
    name = "freezeout"
    uses_scores = False
    sets_unit_lrs = True

    def times(self, n_units: int) -> list[float]:
        return fn.freezeout_times(n_units, self.cfg.freezeout_t0, self.cfg.freezeout_shape)

    def unit_lrs(self, progress: float, base_lr: float, n_units: int, epoch_lr: float | None = None) -> list[float]:
        return [fn.freezeout_lr(progress, r, base_lr, self.cfg.freezeout_scale_lr) for r in self.times(n_units)]

    @classmethod
    def config_problems(cls, s) -> list[str]:
        out = []
        if s.freezeout_shape not in fn.FREEZEOUT_SHAPES:
            out.append(f"strategy.freezeout_shape must be one of {', '.join(fn.FREEZEOUT_SHAPES)} "
                       f"(got {s.freezeout_shape!r})")
        if not 0 < s.freezeout_t0 <= 1:
            out.append(f"strategy.freezeout_t0 must be in (0, 1] (got {s.freezeout_t0})")
        return out

    def decide(self, obs: Observation) -> Decision:
        n_conv = obs.n_cut + len(obs.names)
        times = self.times(n_conv + 1)
        n = fn.freezeout_cut(times, run_progress(obs), n_conv)
        nxt = times[n] if n < n_conv else None
        d = cut_to(obs, n, "freezeout", level=nxt)
        if d.decision == "keep" and nxt is not None:
            d.decision_reason = (f"freezeout: {obs.names[0]} freezes at {nxt:.3f} of the run "
                                 f"(now {run_progress(obs):.3f})")
        return d
