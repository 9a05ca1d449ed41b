"""Cut policies: the objects that decide, at the end of each epoch, how many leading units to cut.

Each is registered by name (`strategy.policy`) and keeps its own state (what it stored when it cut,
the warm-up) for checkpoints. `decide` gets the epoch's observation (head scores P_l of Eq. 2, train
loss, class count) and returns a `Decision`: the new number of cut units plus the words of the trace
(`decision`, `decision_reason`, n*, Mc, Md) that go into the row's history and the log.

- `learn_and_drop` (default): the paper's rule, exactly (Eq. 3 standardisation, Eq. 4 candidates, the
  median rule Mc >= Md). Its guard (`strategy.guard`): the rule may cut a network that has not started
  learning (train loss above `strategy.start_loss` x ln K, K classes: a uniform guess scores ln K). With
  `warn` (default) it still cuts, as the paper does, and marks the row; `block` waits instead; `off`.
- `noise_level` (ours, opt-in): a unit has stopped learning when its epoch's gradients cancel as much
  as pure noise would. For N steps of i.i.d. zero-mean gradients, E|sum g| / sum |g| = 1/sqrt(N), so
  P_l >= 1 - 1/sqrt(N) (minus `strategy.tolerance`) means the epoch moved the unit no further than a
  random walk. This is raw P on a fixed scale, the same for every head size and network, so no earlier
  outlier can block later cuts (the paper's P' <= sqrt(n-1) can make its stored median Md unreachable).
  It waits until the network learns (the same loss test as the guard), then cuts the leading units at
  the noise level, in order, at most `strategy.max_cut_fraction` of the cuttable head per decision (cuts
  come in groups, each measured on the new head), and stops for good when the first epoch after a cut
  ends with a train loss more than `strategy.rise_tolerance` (x 100 %) above the cut epoch's.
- `schedule`: fixed cuts {epoch: leading units} (the paper's reference [8]); `none`: never cuts.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import median

from ..registry import POLICIES
from . import policy as fn


def register_policy(cls: type) -> type:
    """Register a CutPolicy subclass under its `name` (fastdrop.registry.POLICIES)."""
    return POLICIES.register()(cls)


@dataclass
class Observation:
    epoch: int
    p: list[float]          # P_l of the head's conv units (Eq. 2), first head unit first
    names: list[str]        # their unit names
    n_cut: int              # leading units cut so far
    train_loss: float       # mean training loss of the epoch
    num_classes: int
    steps: int = 0          # optimiser steps the scores were accumulated over
    epochs: int = 0         # the run's length (schedule-driven rules place their cuts by share of it)
    g: list[float] = field(default_factory=list)  # per unit: sum over its weights of |sum of g| (Eq. 2's numerator)
    drift: list[float] = field(default_factory=list)  # per unit: relative change of its probe output (drift)


@dataclass
class Decision:
    n_cut: int                   # leading units cut from now on (>= the observation's)
    decision: str                # cut | keep | wait
    decision_reason: str
    n_star: int | None = None    # candidates (leading head units)
    Mc: float | None = None      # their median standardised score
    Md: float | None = None      # the stored median it was compared with (learn_and_drop)
    level: float | None = None   # the threshold the rule compared with (noise level, AutoFreeze's tau, ...)
    warning: str | None = None   # something the user must know (goes into the row's warnings)

    def record(self) -> dict:
        d = asdict(self)
        d.pop("n_cut")
        d.pop("warning")
        return d


def _span(names: list[str], k: int) -> str:
    return names[0] if k == 1 else f"{names[0]}-{names[k - 1]}"


class CutPolicy:
    """Never cuts (`policy=none`); the base of the others."""
    name = "none"
    uses_warmup = False
    uses_schedule = False  # whether strategy.schedule means anything to it (else setting one warns)
    benched = False  # whether `fastdrop bench` runs it by default (beside each strategy's default policy)
    # What the decision figure's right panel draws for it: (history key per unit, y label, label of the
    # `level` line), or None (the cut annotations carry its reasons).
    trace: tuple[str, str, str] | None = None
    uses_drift = False     # whether the strategy must measure each unit's output drift on a probe (ours)
    sets_unit_lrs = False  # whether unit_lrs gives each unit its own learning rate (one optimiser group each)

    def __init__(self, cfg):
        self.cfg = cfg

    def decide(self, obs: Observation) -> Decision:
        return Decision(obs.n_cut, "keep", "policy none: never cuts")

    def unit_lrs(self, progress: float, base_lr: float, n_units: int) -> list[float] | None:
        """Per-unit learning rates at `progress` (share of the run done), called before every step when
        `sets_unit_lrs`; None: every unit follows optim.lr and its milestones."""
        return None

    def before_training(self, n_cut: int, n_conv: int) -> int:
        """Units to cut before epoch 1 (an "epoch 0" decision); none for a score-driven policy."""
        return n_cut

    @classmethod
    def config_problems(cls, s) -> list[str]:
        """What is wrong with the `strategy` config for this policy (checked by fastdrop.validate)."""
        return []

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, sd: dict) -> None:
        pass


register_policy(CutPolicy)


@register_policy
class Schedule(CutPolicy):
    name = "schedule"
    uses_schedule = True

    def unit_lrs(self, progress: float, base_lr: float, n_units: int) -> list[float] | None:
        """Per-unit learning rates at `progress` (share of the run done), called before every step when
        `sets_unit_lrs`; None: every unit follows optim.lr and its milestones."""
        return None

    def before_training(self, n_cut: int, n_conv: int) -> int:
        return fn.schedule_cut(fn.parse_schedule(self.cfg.schedule), 0, n_cut, n_conv)

    @classmethod
    def config_problems(cls, s) -> list[str]:
        if s.schedule is None:
            return ["strategy.policy=schedule needs strategy.schedule, e.g. 'strategy.schedule={2:3,4:6}' "
                    "(without one nothing is ever cut)"]
        return []

    def decide(self, obs: Observation) -> Decision:
        n_conv = obs.n_cut + len(obs.p)
        new = fn.schedule_cut(fn.parse_schedule(self.cfg.schedule), obs.epoch, obs.n_cut, n_conv)
        if new > obs.n_cut:
            return Decision(new, "cut", f"schedule: cut {_span(obs.names, new - obs.n_cut)}")
        return Decision(obs.n_cut, "keep", "schedule: no cut at this epoch")


class _WarmUp(CutPolicy):
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


@register_policy
class LearnAndDrop(_WarmUp):
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


@register_policy
class NoiseLevel(_WarmUp):
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


def make_policy(cfg) -> CutPolicy:
    return POLICIES[cfg.policy](cfg)
