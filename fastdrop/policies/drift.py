"""Our cut policy, `drift`: a unit has stopped learning when its *output* has stopped moving.

Dropping replaces a unit's output by a stored copy, so what matters is whether that output still changes.
At the end of every epoch the strategy runs a fixed probe (the first `strategy.drift_probe` training
images, un-augmented, every unit in eval mode) through the chain and measures, per head unit, the
relative change of its output since the previous epoch, d = ||f_t - f_{t-1}|| / ||f_t|| (maps average-
pooled to at most 8 x 8, so the stored copy stays small). d is a ratio of norms: it does not depend on the
number of steps per epoch, the loss scale, the class count or the width, the things that made
`noise_level`'s 1 - 1/sqrt(N) level and its ln K loss gate fail on other configs.

The leading units are cut, in order, while each is settled: d <= `strategy.drift_floor` (its output
moved by under 10 % in the epoch), or d has fallen to `strategy.drift_settle` x its first epoch's drift
and stopped falling (d >= `strategy.drift_stall` x the previous epoch's: the unit sits at the noise floor
of the current learning rate). On an augmented training split that second test counts only once the
schedule has lowered the rate (the epoch's LR at most `strategy.drift_stall_lr` x its peak so far; by
default 0.5 there, 1 = any rate on an un-augmented split): at the peak rate a slow, noisy fall reads as a
stall, and on augmented CIFAR-10 it cut from epoch 6 of 30 and cost 5 points, while on the un-augmented
suite and the offline default the cuts it makes before the drop cost nothing measurable (README). The
last conv unit is never cut. Every decision is re-measured on the
new head at the next epoch. Measured on the design runs (VGG-11 x0.25, bundled MNIST): d is 0.2-0.9 at the
high learning rate and falls 3-10 x within an epoch of an LR drop, in depth order.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import rules as fn
from .base import CutPolicy, Decision, Observation, _span, register_policy


class FeatureProbe:
    """The probe images and each conv unit's pooled output on them at the last measurement."""

    def __init__(self, chain, data, ctx, n_images: int):
        self.chain, self.ctx = chain, ctx
        self.x = ctx.inputs(data, data.train.fetch(slice(0, min(n_images, len(data.train)))))
        self.last: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def _features(self, n_cut: int) -> dict[int, torch.Tensor]:
        was = [u.training for u in self.chain.units]
        self.chain.eval()
        out, state = {}, (self.x,)
        with self.ctx.autocast_ctx():
            for i, u in enumerate(self.chain.units[:-1]):
                state = u(state)
                if i >= n_cut:
                    f = state[0].float()
                    if f.dim() == 4 and f.shape[-1] > 8:
                        f = F.adaptive_avg_pool2d(f, 8)
                    out[i] = f
        for u, t in zip(self.chain.units, was):
            u.train(t)
        return out

    def measure(self, n_cut: int) -> list[float]:
        """Drift of each head conv unit since the last call (NaN where there is no earlier copy)."""
        new = self._features(n_cut)
        d = [fn.relative_drift(f, self.last[i]) if i in self.last else float("nan") for i, f in new.items()]
        self.last = new
        return d

    def state_dict(self) -> dict:
        return {i: f.cpu() for i, f in self.last.items()}

    def load_state_dict(self, sd: dict) -> None:
        self.last = {int(i): f.to(self.x.device) for i, f in sd.items()}


@register_policy
class Drift(CutPolicy):
    name = "drift"
    benched = True
    uses_drift = True
    uses_scores = False
    trace = ("drift", "output drift on the probe (change per epoch)", "drift floor")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.first: dict[str, float] = {}  # each unit's drift in its first measured epoch
        self.prev: dict[str, float] = {}
        self.first_loss: float | None = None  # the first decided epoch's train loss (the fit gate's reference)
        self.peak_lr = 0.0  # the highest scheduled LR seen: the stall test waits until the schedule lowers it
        self.cooled = 0  # leading chain units the fit gate has cooled (drift_cool > 0)
        # a local LR drop needs a rate per unit: one optimiser group each, only where cooling is on
        self.sets_unit_lrs = cfg.drift_cool > 0 and cfg.drift_fit > 0

    @classmethod
    def config_problems(cls, s) -> list[str]:
        if s.drift_stall_lr is not None and not 0 < s.drift_stall_lr <= 1:
            return [f"strategy.drift_stall_lr must be in (0, 1] (got {s.drift_stall_lr}): the share of the peak LR "
                    "under which the stall test may cut (1: at any rate)"]
        if not 0 <= s.drift_cool <= 1:
            return [f"strategy.drift_cool must be in [0, 1] (got {s.drift_cool}): the cooled units' share of the LR"]
        if s.drift_cool > 0 and s.drift_fit <= 0:  # cooling starts where the fit gate opens: without it, never
            return ["strategy.drift_cool needs the fit gate: add strategy.drift_fit=0.25 (or another share)"]
        return []

    def unit_lrs(self, progress: float, base_lr: float, n_units: int,
                 epoch_lr: float | None = None) -> list[float] | None:
        if not self.cooled:
            return None  # the epoch's rate for every group
        return fn.cooled_lrs(base_lr if epoch_lr is None else epoch_lr, n_units, self.cooled, self.cfg.drift_cool)

    def decide(self, obs: Observation) -> Decision:
        d = list(obs.drift)
        if len(d) != len(obs.names):  # only a strategy with the probe measures it (Freezing, Dropping do)
            return Decision(obs.n_cut, "wait", "drift: no probe measurement this epoch")
        for n, x in zip(obs.names, d):
            self.first.setdefault(n, x)
        first = [self.first[n] for n in obs.names]
        prev = [self.prev.get(n, float("nan")) for n in obs.names]
        self.prev.update(zip(obs.names, d))
        c = self.cfg
        if self.first_loss is None:
            self.first_loss = obs.train_loss
        if not math.isnan(obs.lr):
            self.peak_lr = max(self.peak_lr, obs.lr)
        dropped = fn.lr_has_dropped(obs.lr, self.peak_lr, fn.stall_lr_share(c.drift_stall_lr, obs.augmented))
        # a cooled unit has had its own LR drop: the stall test holds for it at the peak rate too
        stall_prev = [x if dropped or obs.n_cut + i < self.cooled else math.nan for i, x in enumerate(prev)]
        k = fn.drift_cut(d, first, stall_prev, c.drift_floor, c.drift_settle, c.drift_stall)
        gate = len(d) > 1 and fn.fit_gate(obs.train_loss, self.first_loss, c.drift_fit)
        cool = ""  # what this epoch cooled, for the trace
        if gate and self.sets_unit_lrs:  # cool instead of cutting: a local LR drop, then the drift rule cuts
            was, self.cooled = self.cooled, fn.cooled_units(self.cooled, obs.n_cut, len(d), c.drift_fit_share)
            lo = max(was - obs.n_cut, 0)
            if self.cooled - obs.n_cut > lo:
                cool = (f"cool {_span(obs.names[lo:], self.cooled - obs.n_cut - lo)} (LR x {c.drift_cool:g}; train "
                        f"loss {obs.train_loss:.3f} <= {c.drift_fit:g} x the first epoch's {self.first_loss:.3f}: fit)")
            if not k and cool:
                return Decision(obs.n_cut, "keep", f"{cool}; cut once settled", 0, level=c.drift_floor)
        elif gate:
            k = max(k, math.ceil(c.drift_fit_share * (len(d) - 1)))
            return Decision(obs.n_cut + k, "cut", f"cut {_span(obs.names, k)} (train loss {obs.train_loss:.3f} <= "
                            f"{c.drift_fit:g} x the first epoch's {self.first_loss:.3f}: fit)", k, level=c.drift_floor)
        if not k:
            why = ("the last conv unit is never cut" if len(d) == 1 else
                   f"drift {d[0]:.3f} (first {first[0]:.3f}, previous {prev[0]:.3f}): not settled"
                   + ("" if dropped else f" (LR {obs.lr:g} at its peak: only the floor {c.drift_floor:g} counts)"))
            return Decision(obs.n_cut, "keep", f"{obs.names[0]} kept: {why}", 0, level=c.drift_floor)
        return Decision(obs.n_cut + k, "cut", f"cut {_span(obs.names, k)} (output drift "
                        f"{', '.join(f'{x:.3f}' for x in d[:k])}: settled)" + (f"; {cool}" if cool else ""),
                        k, level=c.drift_floor)

    def state_dict(self) -> dict:
        return {"first": self.first, "prev": self.prev, "first_loss": self.first_loss, "cooled": self.cooled,
                "peak_lr": self.peak_lr}

    def load_state_dict(self, sd: dict) -> None:
        self.first, self.prev = dict(sd.get("first", {})), dict(sd.get("prev", {}))
        self.first_loss = sd.get("first_loss")
        self.cooled = int(sd.get("cooled", 0))
        self.peak_lr = float(sd.get("peak_lr", 0.0))
