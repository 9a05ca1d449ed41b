"""Cut policies on hand-made score / loss sequences: the paper's rule (and its guard), our noise_level
policy, and the two failure cases seen in real runs (an outlier first cut that stalls the median rule;
cuts before the network has started learning)."""
from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from fastdrop.config import StrategyConfig
from fastdrop.policies import POLICIES, Observation, make_policy
from fastdrop.policies.rules import standardise, candidates_at_noise, group_cap, learning_started, noise_level

NAMES = [f"conv{i}" for i in range(1, 9)]


def cfg(**kw):
    c = OmegaConf.structured(StrategyConfig(name="dropping"))
    for k, v in kw.items():
        OmegaConf.update(c, k, v)
    return c


def obs(epoch, p, n_cut=0, loss=0.1, steps=100):
    return Observation(epoch, list(p), NAMES[n_cut:n_cut + len(p)], n_cut, loss, 10, steps)


def test_registry_holds_every_policy():
    assert set(POLICIES) >= {"learn_and_drop", "noise_level", "schedule", "none"}


def test_pure_helpers_on_hand_values():
    assert noise_level(100) == pytest.approx(0.9) and noise_level(4) == pytest.approx(0.5)
    assert candidates_at_noise([0.95, 0.91, 0.80, 0.99], 0.9) == 2
    assert candidates_at_noise([0.95, 0.95, 0.95], 0.9) == 2  # the last conv is never a candidate
    assert candidates_at_noise([math.nan, 0.95], 0.9) == 0
    assert group_cap(8, 0.5) == 4 and group_cap(3, 0.5) == 1 and group_cap(2, 1.0) == 1
    assert learning_started(1.0, 10, 0.5) and not learning_started(1.2, 10, 0.5)  # 0.5 ln 10 = 1.151
    assert not learning_started(math.nan, 10, 0.5)


def test_paper_rule_stalls_after_an_outlier_first_cut():
    """Issue 10's trace: conv1 (+2.40) and conv2 (+0.23) cut first, Md = 1.32; later candidate sets with
    medians 0.78 and 0.71 are blocked for good — the rule is the paper's, so this must stay so."""
    pol = make_policy(cfg(policy="learn_and_drop", warmup=0))
    p = [0.5 + 0.01 * v for v in (2.40, 0.23, -0.2, -0.3, -0.4, -0.5, -0.6, -0.63)]  # an outlier leads
    d = pol.decide(obs(1, p))
    assert d.decision == "cut" and d.n_cut == 2 and d.Md is None
    assert pol.dropped_z == pytest.approx(standardise(p)[:2]) and pol.dropped_z[0] > 2.5
    md = (pol.dropped_z[0] + pol.dropped_z[1]) / 2  # 1.39
    # three equal leaders, far above the rest: z = 0.996 each, as high as this head allows them
    blocked = pol.decide(obs(2, [0.9, 0.9, 0.9, 0.1, 0.1, 0.2], n_cut=2))
    assert blocked.decision == "keep" and blocked.n_cut == 2 and blocked.n_star == 3
    assert blocked.Mc == pytest.approx(0.996, abs=1e-3) and blocked.Md == pytest.approx(md)
    assert blocked.decision_reason == f"median rule: Mc 1.00 < Md {md:.2f}"


def test_noise_level_is_not_blocked_by_an_earlier_outlier():
    pol = make_policy(cfg(policy="noise_level", warmup=0, max_cut_fraction=1.0))
    # steps 100: noise level 0.9. conv1 far above the others (an outlier under Eq. 3), conv2 below the level
    d = pol.decide(obs(1, [0.99, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]))
    assert d.decision == "cut" and d.n_cut == 1 and d.level == pytest.approx(0.9)
    d = pol.decide(obs(2, [0.91, 0.92, 0.90, 0.5, 0.5, 0.5, 0.5], n_cut=1, loss=0.09))
    assert d.decision == "cut" and d.n_cut == 4 and d.decision_reason.startswith("cut conv2-conv4")


def test_noise_level_cuts_in_groups_of_at_most_half_the_head():
    pol = make_policy(cfg(policy="noise_level", warmup=0))
    d = pol.decide(obs(1, [0.95] * 8))
    assert d.n_cut == 4  # ceil(0.5 x 7 cuttable)
    d = pol.decide(obs(2, [0.95] * 4, n_cut=4))
    assert d.n_cut == 6  # ceil(0.5 x 3)


def test_noise_level_waits_for_warm_up_and_for_learning():
    pol = make_policy(cfg(policy="noise_level", warmup=1))
    assert pol.decide(obs(1, [0.99] * 8, loss=0.1)).decision_reason.startswith("warm-up")
    d = pol.decide(obs(2, [0.99] * 8, loss=2.2))
    assert d.decision == "wait" and d.n_cut == 0
    assert d.decision_reason == "not learning yet: train loss 2.200 > 0.5 x ln 10 = 1.151"
    assert pol.decide(obs(3, [0.99] * 8, loss=1.0)).decision == "cut"


def test_noise_level_stops_for_good_when_the_loss_rose_after_a_cut():
    pol = make_policy(cfg(policy="noise_level", warmup=0))
    assert pol.decide(obs(1, [0.95] * 8, loss=0.10)).n_cut == 4
    d = pol.decide(obs(2, [0.95] * 4, n_cut=4, loss=0.16))  # +60 % > rise_tolerance 50 %
    assert d.decision == "keep" and d.decision_reason.startswith("stopped: train loss rose after the last cut")
    assert pol.decide(obs(3, [0.95] * 4, n_cut=4, loss=0.01)).decision == "keep"  # for good
    again = make_policy(cfg(policy="noise_level", warmup=0))
    again.load_state_dict(pol.state_dict())
    assert again.decide(obs(4, [0.95] * 4, n_cut=4, loss=0.01)).decision_reason.startswith("stopped")


def test_noise_level_keeps_when_the_first_head_unit_is_still_learning():
    pol = make_policy(cfg(policy="noise_level", warmup=0))
    d = pol.decide(obs(1, [0.7, 0.99, 0.99, 0.99]))
    assert d.decision == "keep" and d.decision_reason == "conv1 still learning: P 0.700 < noise level 0.900"


def test_paper_rule_cut_before_learning_warns_and_block_waits():
    lead = [0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    warn = make_policy(cfg(policy="learn_and_drop", warmup=0))
    d = warn.decide(obs(1, lead, loss=2.25))
    assert d.decision == "cut" and d.n_cut == 2  # it still follows the paper
    assert d.warning.startswith("epoch 1: the paper's rule cut conv1-conv2 before the network started learning")
    block = make_policy(cfg(policy="learn_and_drop", warmup=0, guard="block"))
    d = block.decide(obs(1, lead, loss=2.25))
    assert d.decision == "wait" and d.n_cut == 0 and d.decision_reason.startswith("guard: not learning yet")
    off = make_policy(cfg(policy="learn_and_drop", warmup=0, guard="off"))
    assert off.decide(obs(1, lead, loss=2.25)).warning is None
    assert warn.decide(obs(2, [0.9, 0.1, 0.1, 0.1, 0.1, 0.1], n_cut=2, loss=0.5)).warning is None


def test_decision_figure_draws_only_runs_with_decisions(tmp_path):
    from fastdrop.report.decisions import decision_figure

    hist = [{"epoch": e, "scores": {"conv1": 0.8, "conv2": 0.85}, "scores_std": {"conv1": -1.0, "conv2": 1.0},
             "decision": d, "decision_reason": r, "level": 0.84, "Md": None}
            for e, d, r in [(1, "wait", "warm-up"), (2, "cut", "cut conv1 (P >= noise level 0.840)"), (3, "keep", "x")]]
    run = {"history": hist, "unit_names": ["conv1", "conv2", "fc"]}
    assert decision_figure(run, "t", tmp_path / "d.png") and (tmp_path / "d.png").stat().st_size > 10_000
    sgd = {"history": [{k: v for k, v in h.items() if k != "decision"} for h in hist], "unit_names": ["conv1"]}
    assert not decision_figure(sgd, "t", tmp_path / "none.png") and not (tmp_path / "none.png").exists()


def test_decision_figure_of_a_run_without_scores_draws_what_its_policy_decided_on(tmp_path, monkeypatch):
    import fastdrop.report.decisions as dec

    made = []
    new_figure = dec.new_figure
    monkeypatch.setattr(dec, "new_figure", lambda n=1: made.append(new_figure(n)) or made[-1])
    hist = [{"epoch": e, "drift": {"conv1": d1, "conv2": 0.5}, "decision": d, "decision_reason": r, "level": 0.1}
            for e, d1, d, r in [(1, 0.6, "keep", "conv1 kept"), (2, 0.05, "cut", "cut conv1 (output drift 0.05)")]]
    run = {"history": hist, "unit_names": ["conv1", "conv2", "fc"], "policy": "drift"}
    assert dec.decision_figure(run, "t", tmp_path / "d.png")
    (fig, axes), = made
    assert len(axes) == 1  # no empty score panel beside it
    labels = [ln.get_label() for ln in axes[0].get_lines()]
    assert "conv1" in labels and "conv2" in labels and "drift floor" in labels
