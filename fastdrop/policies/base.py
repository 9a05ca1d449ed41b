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

from ..registry import POLICIES


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
    lr: float = math.nan    # the epoch's scheduled learning rate (NaN: the loop did not say)
    augmented: bool = False  # the training split is augmented (a random transform, or fastdrop's crop + flip)


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
    # whether it decides on the gradient scores (P, G of Eq. 2; obs.p, obs.g): a policy that does not sets
    # False, and its runs skip accumulating them after every backward (5-8 % of a CPU step, results/bench)
    uses_scores = True

    def __init__(self, cfg):
        self.cfg = cfg

    def decide(self, obs: Observation) -> Decision:
        return Decision(obs.n_cut, "keep", "policy none: never cuts")

    def unit_lrs(self, progress: float, base_lr: float, n_units: int,
                 epoch_lr: float | None = None) -> list[float] | None:
        """Per-unit learning rates at `progress` (share of the run done), called before every step when
        `sets_unit_lrs`; `base_lr` is optim.lr, `epoch_lr` the epoch's rate under optim's schedule (base_lr
        where the caller has none). None: every unit follows optim.lr and its schedule."""
        return None

    def before_training(self, n_cut: int, n_conv: int) -> int:
        """Units to cut before epoch 1 (an "epoch 0" decision); none for a score-driven policy."""
        return n_cut

    @classmethod
    def config_problems(cls, s) -> list[str]:
        """What is wrong with the `strategy` config for this policy (checked by fastdrop.config.validate)."""
        return []

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, sd: dict) -> None:
        pass


register_policy(CutPolicy)


def run_progress(obs: Observation) -> float:
    """The share of the run done at the end of the observed epoch."""
    return obs.epoch / obs.epochs if obs.epochs else 0.0


def cut_to(obs: Observation, n: int, rule: str, **kw) -> Decision:
    """Cut up to `n` leading units (a rule that says how many are due), or keep."""
    if n > obs.n_cut:
        k = n - obs.n_cut
        return Decision(n, "cut", f"{rule}: cut {_span(obs.names, k)}", k, **kw)
    return Decision(obs.n_cut, "keep", f"{rule}: no unit due", **kw)


def make_policy(cfg) -> CutPolicy:
    return POLICIES[cfg.policy](cfg)
