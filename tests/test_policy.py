"""Eqs. 1-4, the median rule and the LR schedule on hand-computed vectors."""
import math

import pytest
import torch

from fastdrop.run.lr import get_lr
from fastdrop.policies.rules import (aapd, candidates_eq4, candidates_max_prefix, decide, layer_score,
                                        median_rule, schedule_cut, standardise)
from fastdrop.policies.scores import ScoreAccumulator


# -- Eq. 2 --------------------------------------------------------------------------------------------
def test_score_cancelling_gradients_is_one():
    # g = +1 then -1 on every weight: sum_i |sum_j g| = 0  ->  P = 1 (the layer stopped learning)
    assert layer_score(0.0, 4.0) == 1.0


def test_score_aligned_gradients_is_zero():
    assert layer_score(4.0, 4.0) == 0.0


def test_score_partial():
    # weights: w1 gets (+1, +1), w2 gets (+1, -1): sum|S| = 2, sum A = 4 -> P = 0.5
    assert layer_score(2.0, 4.0) == pytest.approx(0.5)


def test_score_all_zero_gradients_means_not_learning():
    assert layer_score(0.0, 0.0) == 1.0


def test_score_non_finite_is_nan():
    assert math.isnan(layer_score(math.inf, math.inf))
    assert math.isnan(layer_score(math.nan, 1.0))


def test_aapd_eq1():
    assert aapd(6.0, 3) == 2.0


def test_accumulator_matches_hand_computation():
    w1 = torch.nn.Parameter(torch.zeros(2))
    w2 = torch.nn.Parameter(torch.zeros(1))
    acc = ScoreAccumulator([[w1], [w2]])
    for g1, g2 in [([1.0, 1.0], [2.0]), ([1.0, -1.0], [-2.0])]:
        w1.grad, w2.grad = torch.tensor(g1), torch.tensor(g2)
        acc.accumulate()
    p, a = acc.finish()
    # unit 0: S = (2, 0), A = (2, 2) -> P = 1 - 2/4 = 0.5, AAPD = 4/2 = 2
    # unit 1: S = 0, A = 4         -> P = 1,           AAPD = 4/1 = 4
    assert p == pytest.approx([0.5, 1.0])
    assert a == pytest.approx([2.0, 4.0])
    acc.reset()
    assert acc.steps == 0 and float(acc.A[0].sum()) == 0.0


def test_accumulator_units_with_several_weights_pool_them():
    a_, b_ = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    acc = ScoreAccumulator([[a_, b_]])
    a_.grad, b_.grad = torch.tensor([1.0]), torch.tensor([3.0])
    acc.accumulate()
    a_.grad, b_.grad = torch.tensor([1.0]), torch.tensor([-3.0])
    acc.accumulate()
    p, aap = acc.finish()
    # sum|S| = 2 + 0, sum A = 2 + 6 -> P = 0.75 ; AAPD = 8 / 2 weights = 4
    assert p == pytest.approx([0.75]) and aap == pytest.approx([4.0])


# -- Eq. 3 --------------------------------------------------------------------------------------------
def test_standardise_population_std():
    # mean 2, population std sqrt(2/3)
    z = standardise([1.0, 2.0, 3.0])
    s = math.sqrt(2 / 3)
    assert z == pytest.approx([-1 / s, 0.0, 1 / s])


@pytest.mark.parametrize("p", [[0.7], [0.5, 0.5, 0.5], []])
def test_standardise_degenerate_is_zero(p):
    assert standardise(p) == [0.0] * len(p)


def test_standardise_nan_poisons_all():
    assert all(math.isnan(v) for v in standardise([0.1, math.nan, 0.3]))


# -- Eq. 4 and the prefix-sum reading -----------------------------------------------------------------
@pytest.mark.parametrize("z, eq4, prefix", [
    ([-1.0, 0.5, 0.5], 0, 0),                  # all candidates start negative: nothing
    ([1.0, -1.0], 1, 1),                       # one positive then the last unit
    ([1.0, 0.5, -0.2, -1.3], 2, 2),            # leading run of two
    ([1.0, -0.5, 2.0, -2.5], 1, 3),            # a dip: Eq. 4 stops, the max prefix sum goes on
    ([0.0, 1.0, -1.0], 0, 0),                  # first unit exactly average: no candidate
    ([1.0, 0.0, -1.0], 0, 1),                  # a zero stops Eq. 4 (needs next < 0), not the prefix sum
    ([2.0, 1.0, -1.5, -1.5], 2, 2),
    ([1.0, 1.0, 1.0, -3.0], 3, 3),             # everything but the last conv unit
    ([1.0, 2.0, 3.0], 0, 2),                   # (not standardised) all positive: Eq. 4 has no sign change
    ([0.5], 0, 0),                             # a single unit is the last conv unit: never dropped
    ([], 0, 0),
    ([math.nan, -1.0], 0, 0),
    ([1.0, math.nan, -1.0], 0, 0),
])
def test_candidates(z, eq4, prefix):
    assert candidates_eq4(z) == eq4
    assert candidates_max_prefix(z) == prefix


def test_candidates_never_include_last_unit():
    z = [1.0, 1.0, 1.0, 1.0]
    assert candidates_max_prefix(z) == 3
    assert candidates_eq4(z) == 0


def test_prefix_ties_take_shortest():
    assert candidates_max_prefix([1.0, 0.0, 0.0, -1.0]) == 1


# -- median rule --------------------------------------------------------------------------------------
def test_median_rule_first_drop_always_allowed():
    assert median_rule([0.1], [])


@pytest.mark.parametrize("cand, dropped, ok", [
    ([1.0, 2.0, 3.0], [2.0], True),          # 2 >= 2 (tie drops)
    ([1.0, 2.0], [1.5, 1.6], False),         # 1.5 < 1.55
    ([0.3], [0.1, 0.2, 5.0], True),          # 0.3 >= 0.2
    ([], [0.1], False),
    ([math.nan], [], False),                 # NaN never drops
])
def test_median_rule(cand, dropped, ok):
    assert median_rule(cand, dropped) is ok


def test_decide_end_to_end():
    p = [0.9, 0.85, 0.5, 0.4, 0.3]
    n, z, allowed = decide(p, [])
    assert n == 2 and allowed and z == pytest.approx(standardise(p))
    # same candidates but a previous drop had a higher median: blocked
    assert decide(p, [5.0])[0] == 2 and decide(p, [5.0])[2] is False
    assert decide([0.1, 0.2, 0.9], [])[0::2] == (0, False)
    n, _, allowed = decide([0.9, math.nan, 0.1], [])
    assert n == 0 and not allowed


def test_decide_max_prefix_rule():
    # z for this p is about [1.0, -0.5, 2.0, -2.5] in shape: the prefix rule takes three units
    p = [0.6, 0.45, 0.7, 0.25]
    assert decide(p, [], "eq4")[0] == 1
    assert decide(p, [], "max_prefix_sum")[0] == 3


# -- schedule policy ----------------------------------------------------------------------------------
def test_schedule_cut():
    s = {2: 3, 4: 6}
    assert schedule_cut(s, 1, 0, 8) == 0
    assert schedule_cut(s, 2, 0, 8) == 3
    assert schedule_cut(s, 3, 3, 8) == 3
    assert schedule_cut(s, 4, 3, 8) == 6
    assert schedule_cut({1: 99}, 1, 0, 8) == 8      # at most every conv unit (a linear probe)
    assert schedule_cut({0: 8}, 0, 0, 8) == 8       # epoch 0: before training starts
    assert schedule_cut({5: 1}, 5, 3, 8) == 3       # never un-cuts


# -- LR schedule --------------------------------------------------------------------------------------
def test_lr_fixed():
    assert [get_lr(e, 0.001) for e in (1, 30, 60)] == [0.001] * 3


def test_lr_cosine_by_hand():
    # (1 + cos(pi (e - 1) / 4)) / 2 for e = 1..4: 1, 0.8536, 0.5, 0.1464
    assert [get_lr(e, 0.1, schedule="cosine", epochs=4) for e in (1, 2, 3, 4)] == pytest.approx(
        [0.1, 0.085355, 0.05, 0.014645], abs=1e-6)
    assert get_lr(3, 0.1, [1], schedule="step", epochs=4) == pytest.approx(0.01)  # step reads the milestones


def test_lr_divided_after_milestone():
    # CIFAR-10 preset: 0.1, divided by 10 after epoch 20
    assert get_lr(20, 0.1, [20]) == pytest.approx(0.1)
    assert get_lr(21, 0.1, [20]) == pytest.approx(0.01)
    assert get_lr(60, 0.1, [20, 40]) == pytest.approx(0.001)


# -- future-work options (Sect. 6) ---------------------------------------------------------------------
def test_scores_settled():
    from fastdrop.policies.rules import scores_settled
    assert not scores_settled(None, [0.5], 0.1)
    assert scores_settled([0.50, 0.60], [0.52, 0.59], 0.05)
    assert not scores_settled([0.50, 0.60], [0.52, 0.70], 0.05)
    assert not scores_settled([0.5, 0.6], [0.5], 0.05)          # head changed size
    assert not scores_settled([0.5, math.nan], [0.5, 0.5], 0.05)


@pytest.mark.parametrize("full, head, bs, cap, want", [
    (100, 100, 256, 2048, 1),      # nothing cut
    (100, 60, 256, 2048, 1),       # 1.67x cheaper: not yet a doubling
    (100, 50, 256, 2048, 2),
    (100, 20, 256, 2048, 4),       # 5x cheaper -> 4
    (100, 1, 256, 1024, 4),        # capped by max_batch_size
    (100, 1, 256, 256, 1),
])
def test_batch_growth(full, head, bs, cap, want):
    from fastdrop.policies.rules import batch_growth
    assert batch_growth(full, head, bs, cap) == want
