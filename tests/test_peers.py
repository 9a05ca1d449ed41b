"""The peers' rules on hand-made sequences, against their published definitions: FreezeOut's freeze
times and per-unit cosine rates (Brock et al. 2017), AutoFreeze's median rule (Liu et al. 2021) and
Composer's linear freezing share."""
from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from fastdrop.config import StrategyConfig
from fastdrop.policies import POLICIES, Observation, make_policy
from fastdrop.policies.rules import (autofreeze_cut, autofreeze_rates, freezeout_cut, freezeout_lr,
                                        freezeout_times, linear_cut)

NAMES = [f"conv{i}" for i in range(1, 9)]


def cfg(policy, **kw):
    c = OmegaConf.structured(StrategyConfig(name="dropping", policy=policy))
    for k, v in kw.items():
        OmegaConf.update(c, k, v)
    return c


def obs(epoch, n_head, n_cut=0, g=(), epochs=10):
    return Observation(epoch, [0.5] * n_head, NAMES[n_cut:n_cut + n_head], n_cut, 0.1, 10, 100, epochs, list(g))


def test_peers_are_registered():
    assert {"freezeout", "autofreeze", "linear"} <= set(POLICIES)


def test_freezeout_times_by_hand():
    # 5 units (4 conv + classifier), t0 = 0.5, linear: 0.5, 0.625, 0.75, 0.875, 1.0
    assert freezeout_times(5, 0.5, "linear") == pytest.approx([0.5, 0.625, 0.75, 0.875, 1.0])
    # cubic, t0 = 0.8: the first unit at 0.8^3 = 0.512, the classifier at 1
    t = freezeout_times(5, 0.8, "cubic")
    assert t[0] == pytest.approx(0.512) and t[1] == pytest.approx(0.85 ** 3) and t[-1] == pytest.approx(1.0)
    assert freezeout_times(3, 0.5, "squared") == pytest.approx([0.25, 0.5625, 1.0])


def test_freezeout_cosine_rates_by_hand():
    # scaled: starts at lr / r, half of that at r / 2, zero from r on
    assert freezeout_lr(0.0, 0.5, 0.1, True) == pytest.approx(0.2)
    assert freezeout_lr(0.25, 0.5, 0.1, True) == pytest.approx(0.1)
    assert freezeout_lr(0.5, 0.5, 0.1, True) == 0.0 and freezeout_lr(0.9, 0.5, 0.1, True) == 0.0
    assert freezeout_lr(0.0, 0.5, 0.1, False) == pytest.approx(0.1)
    assert freezeout_lr(0.125, 0.5, 0.1, False) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))


def test_freezeout_policy_cuts_at_the_freeze_times_and_sets_unit_rates():
    pol = make_policy(cfg("freezeout", freezeout_t0=0.5, freezeout_shape="linear", freezeout_scale_lr=False))
    # 4 conv units + classifier: freeze times 0.5, 0.625, 0.75, 0.875, 1.0; 8 epochs
    cuts = []
    n = 0
    for e in range(1, 9):
        d = pol.decide(obs(e, 4 - n, n, epochs=8))
        n = d.n_cut
        cuts.append(n)
    assert cuts == [0, 0, 0, 1, 2, 3, 4, 4]  # at 4/8 = 0.5 unit 0, 5/8 unit 1, 6/8 unit 2, 7/8 unit 3
    lrs = pol.unit_lrs(0.25, 0.1, 5)
    assert lrs[0] == pytest.approx(0.05) and lrs[-1] == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))
    assert pol.unit_lrs(0.6, 0.1, 5)[0] == 0.0


def test_autofreeze_median_rule_by_hand():
    rates = autofreeze_rates([10.0, 10.0, 10.0, 10.0, 10.0], [9.9, 9.5, 8.0, 7.0, 9.0])
    assert rates == pytest.approx([0.01, 0.05, 0.2, 0.3, 0.1])
    n, tau = autofreeze_cut(rates)  # median 0.1: units 0 and 1 are below it, unit 2 is not
    assert tau == pytest.approx(0.1) and n == 2
    assert autofreeze_cut([0.5, 0.1, 0.1]) == (0, 0.1)  # the first unit changes most: nothing
    assert autofreeze_cut([0.0, 0.0, 1.0])[0] == 0  # tau = 0: no rate is below it
    assert autofreeze_cut([0.0, 0.1, 0.2, 0.3])[0] == 2  # never past the median unit


def test_autofreeze_policy_needs_two_epochs_and_follows_the_rule():
    pol = make_policy(cfg("autofreeze"))
    assert pol.decide(obs(1, 5, g=[10] * 5)).decision == "wait"
    d = pol.decide(obs(2, 5, g=[9.9, 9.5, 8.0, 7.0, 9.0]))
    assert d.decision == "cut" and d.n_cut == 2 and d.level == pytest.approx(0.1)
    # the next epoch compares the remaining units with their own previous norms
    d = pol.decide(obs(3, 3, n_cut=2, g=[8.0, 7.7, 9.9]))  # rates 0, 0.1, 0.1: median 0.1
    assert d.decision == "cut" and d.n_cut == 3


def test_linear_share_by_hand():
    # 8 conv units + classifier = 9 units; start 0.5: at 0.75 half of 9 -> int(4.5) = 4
    assert linear_cut(0.5, 0.5, 9, 8) == 0 and linear_cut(0.75, 0.5, 9, 8) == 4
    assert linear_cut(0.4, 0.5, 9, 8) == 0 and linear_cut(1.0, 0.5, 9, 8) == 8
    pol = make_policy(cfg("linear"))
    assert [pol.decide(obs(e, 8, epochs=4)).n_cut for e in range(1, 5)] == [0, 0, 4, 8]
