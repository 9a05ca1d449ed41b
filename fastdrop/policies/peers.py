"""The published freezing rules beside Learn&Drop, as cut policies (so Freezing and Dropping apply them
exactly as they apply the paper's rule); the math is in fastdrop.policies.rules.

- `freezeout` (Brock et al. 2017, "FreezeOut: Accelerate Training by Progressively Freezing Layers",
  code ajbrock/FreezeOut): unit i of units 0..L freezes at the share r_i = f(t0 + (1 - t0) i / L) of the
  run (`strategy.freezeout_shape` linear | squared | cubic, `strategy.freezeout_t0`); until then its own
  learning rate follows a cosine from lr0_i to 0 at r_i, lr0_i = lr / r_i when
  `strategy.freezeout_scale_lr` (the paper's defaults: scaled cubic with t0 = 0.8; unscaled linear with
  t0 = 0.5). The per-unit rates replace `optim.milestones`. FreezeOut freezes per step; here a unit is
  cut at the end of the epoch in which its rate reached 0, so nothing it would have learnt is lost.
- `autofreeze` (Liu et al. 2021, "AutoFreeze: Automatically Freezing Model Blocks to Accelerate
  Fine-tuning", code YuhanLiu11/AutoFreeze): per unit G = sum over its weights of |sum over the epoch's
  steps of g|; at each epoch end r = |G_prev - G| / G_prev, tau = median r over the head, and the leading
  units before the first with r >= tau are cut (decisions from the second epoch: G_prev is needed).
- `linear` (Composer's LayerFreezing, mosaicml/composer): from `strategy.linear_start` (0.5) of the run,
  int(share x units) leading units cut, the share growing linearly to all of them at the end. No score:
  the control any scored rule must beat.
"""
from __future__ import annotations

from . import rules as fn
from .base import CutPolicy, Decision, Observation, _span, register_policy


def _progress(obs: Observation) -> float:
    return obs.epoch / obs.epochs if obs.epochs else 0.0


def _cut_to(obs: Observation, n: int, rule: str, **kw) -> Decision:
    if n > obs.n_cut:
        k = n - obs.n_cut
        return Decision(n, "cut", f"{rule}: cut {_span(obs.names, k)}", k, **kw)
    return Decision(obs.n_cut, "keep", f"{rule}: no unit due", **kw)


@register_policy
class FreezeOut(CutPolicy):
    name = "freezeout"
    sets_unit_lrs = True

    def times(self, n_units: int) -> list[float]:
        return fn.freezeout_times(n_units, self.cfg.freezeout_t0, self.cfg.freezeout_shape)

    def unit_lrs(self, progress: float, base_lr: float, n_units: int) -> list[float]:
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
        n_conv = obs.n_cut + len(obs.p)
        times = self.times(n_conv + 1)
        n = fn.freezeout_cut(times, _progress(obs), n_conv)
        nxt = times[n] if n < n_conv else None
        d = _cut_to(obs, n, "freezeout", level=nxt)
        if d.decision == "keep" and nxt is not None:
            d.decision_reason = (f"freezeout: {obs.names[0]} freezes at {nxt:.3f} of the run "
                                 f"(now {_progress(obs):.3f})")
        return d


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


@register_policy
class Linear(CutPolicy):
    name = "linear"

    def decide(self, obs: Observation) -> Decision:
        n_conv = obs.n_cut + len(obs.p)
        n = fn.linear_cut(_progress(obs), self.cfg.linear_start, n_conv + 1, n_conv)
        return _cut_to(obs, n, f"linear from {self.cfg.linear_start:g} of the run ({_progress(obs):.3f} now)")
