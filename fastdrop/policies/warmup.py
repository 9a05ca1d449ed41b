"""The warm-up the score-driven policies share (learn_and_drop, noise_level), and their learning test."""
from __future__ import annotations

import math

from . import rules as fn
from .base import CutPolicy, Decision, Observation


class WarmUp(CutPolicy):
    """The warm-up both score-driven policies share: decisions from the end of epoch W+1 (or once the
    scores settle, with strategy.warmup_settle)."""
    uses_warmup = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.prev_p: list[float] | None = None
        self.warm_since: int | None = None

    def _warming(self, obs: Observation) -> Decision | None:
        if self.warm_since is not None:
            return None
        tol = self.cfg.warmup_settle
        settled = tol is not None and fn.scores_settled(self.prev_p, obs.p, tol)
        self.prev_p = list(obs.p)
        if not (obs.epoch > self.cfg.warmup or settled):
            return Decision(obs.n_cut, "wait", f"warm-up (decisions from epoch {self.cfg.warmup + 1})")
        self.warm_since = obs.epoch
        return None

    def _not_learning(self, obs: Observation) -> str | None:
        if fn.learning_started(obs.train_loss, obs.num_classes, self.cfg.start_loss):
            return None
        limit = self.cfg.start_loss * math.log(obs.num_classes)
        op = ">" if obs.train_loss > limit else "is not below"  # a NaN loss
        return (f"not learning yet: train loss {obs.train_loss:.3f} {op} {self.cfg.start_loss:g} x ln {obs.num_classes} "
                f"= {limit:.3f}")

    def state_dict(self) -> dict:
        return {"prev_p": self.prev_p, "warm_since": self.warm_since}

    def load_state_dict(self, sd: dict) -> None:
        self.prev_p, self.warm_since = sd.get("prev_p"), sd.get("warm_since")
