"""`learn_and_drop` (default): the paper's rule, exactly (Eq. 3 standardisation, Eq. 4 candidates, the
median rule Mc >= Md), with its guard against cutting a network that has not started learning."""
from __future__ import annotations

from statistics import median

from . import rules as fn
from .base import Decision, Observation, _span, register_policy
from .warmup import WarmUp


@register_policy
class LearnAndDrop(WarmUp):
    name = "learn_and_drop"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.dropped_z: list[float] = []  # P' of the dropped units, as they were when dropped

    def decide(self, obs: Observation) -> Decision:
        wait = self._warming(obs)
        if wait is not None:
            return wait
        n, z, allowed = fn.decide(obs.p, self.dropped_z, self.cfg.candidates)
        md = median(self.dropped_z) if self.dropped_z else None
        if not n:
            return Decision(obs.n_cut, "keep", "no positive lead (Eq. 4 finds no candidates)", 0, None, md)
        mc = median(z[:n])
        if not allowed:
            return Decision(obs.n_cut, "keep", f"median rule: Mc {mc:.2f} < Md {md:.2f}", n, mc, md)
        why = self._not_learning(obs)
        if why and self.cfg.guard == "block":
            return Decision(obs.n_cut, "wait", f"guard: {why}", n, mc, md)
        self.dropped_z += z[:n]
        rule_words = f"Mc {mc:.2f} >= Md {md:.2f}" if md is not None else f"Mc {mc:.2f}, first drop"
        d = Decision(obs.n_cut + n, "cut", f"cut {_span(obs.names, n)} ({rule_words})", n, mc, md)
        if why and self.cfg.guard == "warn":
            d.warning = (f"epoch {obs.epoch}: the paper's rule cut {_span(obs.names, n)} before the network started "
                         f"learning ({why.split(': ', 1)[1]}); strategy.guard=block waits instead")
        return d

    def state_dict(self) -> dict:
        return {**super().state_dict(), "dropped_z": self.dropped_z}

    def load_state_dict(self, sd: dict) -> None:
        super().load_state_dict(sd)
        self.dropped_z = list(sd.get("dropped_z", []))
