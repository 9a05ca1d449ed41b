"""`noise_level` (ours, opt-in): cut the leading units whose gradients cancel as much as pure noise would
(P_l >= 1 - 1/sqrt(steps) - tolerance), in groups, stopping once a cut makes the loss rise."""
from __future__ import annotations

from statistics import median

from . import rules as fn
from .base import Decision, Observation, _span, register_policy
from .warmup import WarmUp


@register_policy
class NoiseLevel(WarmUp):
    name = "noise_level"
    benched = False  # replaced by `drift` as ours in the bench's default variants (still an option)
    trace = ("scores", "raw score P (Eq. 2)", "noise level 1 - 1/sqrt(steps)")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.cut_loss: float | None = None  # train loss of the epoch of the last cut, until checked
        self.stopped: str | None = None      # why cutting stopped for good

    def decide(self, obs: Observation) -> Decision:
        wait = self._warming(obs)
        if wait is not None:
            return wait
        if self.stopped:
            return Decision(obs.n_cut, "keep", self.stopped)
        if self.cut_loss is not None:  # the first epoch on the new head: did the cut hurt?
            before, self.cut_loss = self.cut_loss, None
            if obs.train_loss > before * (1 + self.cfg.rise_tolerance):
                self.stopped = f"stopped: train loss rose after the last cut ({before:.4f} -> {obs.train_loss:.4f})"
                return Decision(obs.n_cut, "keep", self.stopped)
        why = self._not_learning(obs)
        if why:
            return Decision(obs.n_cut, "wait", why)
        level = fn.noise_level(obs.steps) - self.cfg.tolerance
        n = fn.candidates_at_noise(obs.p, level)
        if not n:
            why = (f"{obs.names[0]} kept: the last conv unit is never cut" if len(obs.p) == 1 else
                   f"{obs.names[0]} still learning: P {obs.p[0]:.3f} < noise level {level:.3f}" if obs.p[0] < level
                   else f"{obs.names[0]} kept: no score this epoch (P {obs.p[0]})")
            return Decision(obs.n_cut, "keep", why, 0, level=level)
        k = min(n, fn.group_cap(len(obs.p), self.cfg.max_cut_fraction))
        self.cut_loss = obs.train_loss
        mc = median(obs.p[:n])
        return Decision(obs.n_cut + k, "cut", f"cut {_span(obs.names, k)} (P >= noise level {level:.3f})", n, mc,
                        level=level)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "cut_loss": self.cut_loss, "stopped": self.stopped}

    def load_state_dict(self, sd: dict) -> None:
        super().load_state_dict(sd)
        self.cut_loss, self.stopped = sd.get("cut_loss"), sd.get("stopped")
