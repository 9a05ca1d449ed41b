"""Ours (`drift`) on hand-made drift sequences, its probe on a real chain, the per-unit learning rates of
FreezeOut reaching the optimiser in a real run, and the suite's pure helpers (frontier, convergence)."""
from __future__ import annotations

import math

import pytest
import torch

from fastdrop.policies import Observation, make_policy
from fastdrop.policies.rules import cooled_lrs, cooled_units, drift_cut, fit_gate, relative_drift
from fastdrop.bench.suite import frontier_acc, last_quarter_rise, schedule_overrides
from fastdrop.run.trainer import Trainer

NAMES = [f"conv{i}" for i in range(1, 9)]


def test_drift_cut_by_hand():
    first = [0.8, 0.8, 0.8, 0.8]
    # under the floor (0.1) -> settled, whatever the history
    assert drift_cut([0.05, 0.09, 0.3, 0.3], first, None, 0.1, 0.5, 0.9) == 2
    # fallen to half its first drift and stalled (0.35 >= 0.9 x 0.38): settled; conv2 still falls
    assert drift_cut([0.35, 0.30, 0.3, 0.3], first, [0.38, 0.45, 0.3, 0.3], 0.1, 0.5, 0.9) == 1
    # stalled but not yet settled (0.6 > 0.5 x 0.8): kept
    assert drift_cut([0.6, 0.05, 0.05], first, [0.6, 0.05, 0.05], 0.1, 0.5, 0.9) == 0
    assert drift_cut([0.01, 0.01, 0.01], first, None, 0.1, 0.5, 0.9) == 2  # the last conv never
    assert drift_cut([math.nan, 0.01], first, None, 0.1, 0.5, 0.9) == 0
    assert relative_drift(torch.ones(4) * 2, torch.ones(4)) == pytest.approx(0.5)


def test_drift_policy_keeps_first_and_previous_per_unit(compose):
    cfg = compose(["strategy=dropping", "strategy.policy=drift"]).strategy
    pol = make_policy(cfg)

    def obs(e, d, n_cut=0):
        return Observation(e, [0.5] * len(d), NAMES[n_cut:n_cut + len(d)], n_cut, 0.1, 10, 40, 10, [], list(d))

    assert pol.decide(obs(1, [0.8, 0.8, 0.8])).decision == "keep"
    assert pol.decide(obs(2, [0.38, 0.6, 0.8])).decision == "keep"  # conv1 still falling
    d = pol.decide(obs(3, [0.36, 0.6, 0.8]))
    assert d.decision == "cut" and d.n_cut == 1 and "conv1" in d.decision_reason
    d = pol.decide(obs(4, [0.05, 0.8], n_cut=1))  # conv2 under the floor; conv3 is the last conv
    assert d.n_cut == 2
    assert "never cut" in pol.decide(obs(5, [0.01], n_cut=2)).decision_reason


def test_drift_stall_test_waits_for_the_schedule_to_lower_the_rate(compose):
    """On an augmented split, at the peak LR only the floor cuts; the same drifts cut by the stall test once
    the rate has dropped. Un-augmented: the stall test at any rate unless drift_stall_lr says otherwise."""
    from fastdrop.policies.rules import lr_has_dropped, stall_lr_share

    assert stall_lr_share(None, True) == 0.5 and stall_lr_share(None, False) == 1 and stall_lr_share(0.3, False) == 0.3
    assert lr_has_dropped(0.025, 0.05, 0.5) and not lr_has_dropped(0.026, 0.05, 0.5)
    assert lr_has_dropped(math.nan, 0.05, 0.5)  # a loop that gives no rate: the rule as it was
    cfg = compose(["strategy=dropping", "strategy.policy=drift"]).strategy
    pol = make_policy(cfg)

    def obs(e, d, lr, n_cut=0, augmented=True):
        return Observation(e, [0.5] * len(d), NAMES[n_cut:n_cut + len(d)], n_cut, 0.1, 10, 40, 10, [], list(d),
                           lr, augmented)

    assert pol.decide(obs(1, [0.8, 0.8, 0.8], 0.05)).decision == "keep"
    assert pol.decide(obs(2, [0.38, 0.6, 0.8], 0.05)).decision == "keep"
    d = pol.decide(obs(3, [0.36, 0.6, 0.8], 0.05))  # stalled at <= half its first drift, but at the peak rate
    assert d.decision == "keep" and "at its peak" in d.decision_reason
    d = pol.decide(obs(4, [0.09, 0.6, 0.8], 0.05))  # under the floor: cut at any rate
    assert d.decision == "cut" and d.n_cut == 1
    d = pol.decide(obs(5, [0.31, 0.8], 0.005, n_cut=1))  # conv2: 0.31 <= 0.6 / 2 and >= 0.9 x 0.6? no: falling
    assert d.decision == "keep"
    d = pol.decide(obs(6, [0.3, 0.8], 0.005, n_cut=1))   # stalled, and the LR has dropped: cut
    assert d.decision == "cut" and d.n_cut == 2
    pol2 = make_policy(cfg)
    pol2.load_state_dict(pol.state_dict())
    assert pol2.peak_lr == 0.05  # resume keeps the peak
    plain = make_policy(cfg)  # an un-augmented split: the stall test at any rate, as before
    for e, d in ((1, [0.8, 0.8, 0.8]), (2, [0.38, 0.6, 0.8])):
        plain.decide(obs(e, d, 0.05, augmented=False))
    assert plain.decide(obs(3, [0.36, 0.6, 0.8], 0.05, augmented=False)).n_cut == 1
    forced = make_policy(compose(["strategy=dropping", "strategy.policy=drift", "strategy.drift_stall_lr=0.5"]).strategy)
    for e, d in ((1, [0.8, 0.8, 0.8]), (2, [0.38, 0.6, 0.8])):
        forced.decide(obs(e, d, 0.05, augmented=False))
    assert forced.decide(obs(3, [0.36, 0.6, 0.8], 0.05, augmented=False)).n_cut == 0  # as configured
    from fastdrop.config.validate import validate
    with pytest.raises(Exception, match="drift_stall_lr"):
        validate(compose(["strategy=dropping", "strategy.policy=drift", "strategy.drift_stall_lr=0"]))


def test_fit_gate_by_hand():
    assert fit_gate(0.5, 2.0, 0.25) and not fit_gate(0.51, 2.0, 0.25)  # 0.25 x 2.0 = 0.5
    assert not fit_gate(0.0, 2.0, 0.0)                                 # share 0: off
    assert not fit_gate(math.nan, 2.0, 0.25) and not fit_gate(0.1, math.nan, 0.25)


def _obs(e, loss, n_cut, d=()):
    """An epoch's observation of VGG-11's 8 conv units with `n_cut` cut: drift d for the leading head units,
    0.8 (not settled) for the rest."""
    k = 8 - n_cut
    return Observation(e, [0.5] * k, NAMES[n_cut:], n_cut, loss, 10, 40, 10, [], list(d) + [0.8] * (k - len(d)))


def test_drift_fit_gate_cuts_a_share_of_the_head_per_epoch_where_the_drift_would_wait(compose):
    cfg = compose(["strategy=dropping", "strategy.policy=drift", "strategy.drift_fit=0.25"]).strategy
    pol = make_policy(cfg)
    assert pol.decide(_obs(1, 2.0, 0)).decision == "keep"   # the reference loss; drift 0.8: not settled
    assert pol.decide(_obs(2, 0.6, 0)).decision == "keep"   # 0.6 > 0.25 x 2.0
    d = pol.decide(_obs(3, 0.4, 0))                          # fit: ceil(0.25 x 7 cuttable) = 2
    assert d.decision == "cut" and d.n_cut == 2 and "fit" in d.decision_reason and "2.000" in d.decision_reason
    assert pol.decide(_obs(4, 0.3, 2)).n_cut == 4            # ceil(0.25 x 5) = 2 more
    assert pol.decide(_obs(5, 0.3, 7)).decision == "keep"    # only the last conv is left
    assert pol.state_dict()["first_loss"] == 2.0
    assert make_policy(compose(["strategy=dropping", "strategy.policy=drift"]).strategy).cfg.drift_fit == 0


def test_cooling_by_hand():
    assert cooled_units(0, 0, 8, 0.25) == 2       # ceil(0.25 x 7 cuttable)
    assert cooled_units(2, 0, 8, 0.25) == 4       # on top of what is cooled
    assert cooled_units(2, 3, 5, 0.25) == 4       # on top of what is cut: ceil(0.25 x 4) = 1 more
    assert cooled_units(6, 0, 8, 1.0) == 7        # never the last conv
    assert cooled_lrs(0.05, 4, 2, 0.1) == [0.05 * 0.1, 0.05 * 0.1, 0.05, 0.05]


def test_drift_cooling_lowers_the_leading_units_rate_then_cuts_them_once_settled(compose):
    cfg = compose(["strategy=dropping", "strategy.policy=drift", "strategy.drift_fit=0.25",
                   "strategy.drift_cool=0.1"]).strategy
    pol = make_policy(cfg)
    assert pol.sets_unit_lrs and pol.unit_lrs(0.1, 0.05, 9, 0.05) is None  # nothing cooled yet: the epoch's rate

    assert pol.decide(_obs(1, 2.0, 0, [])).decision == "keep"
    d = pol.decide(_obs(2, 0.4, 0, []))            # fit: cool 2 units instead of cutting them
    assert d.decision == "keep" and d.n_cut == 0 and "cool" in d.decision_reason
    assert pol.unit_lrs(0.2, 0.05, 9, 0.005) == [0.0005, 0.0005] + [0.005] * 7  # x 0.1 of the epoch's rate
    d = pol.decide(_obs(3, 0.3, 0, [0.05, 0.05]))  # the cooled units settled (drift under the floor): cut
    assert d.decision == "cut" and d.n_cut == 2 and pol.cooled == 4
    assert "cool conv3-conv4" in d.decision_reason  # the cooling of the same epoch is in the trace too
    pol2 = make_policy(cfg)
    pol2.load_state_dict(pol.state_dict())
    assert pol2.cooled == 4
    assert not make_policy(compose(["strategy=dropping", "strategy.policy=drift"]).strategy).sets_unit_lrs


def test_drift_cooling_without_the_fit_gate_is_refused(compose):
    from fastdrop.config.validate import validate
    with pytest.raises(Exception, match="drift_fit"):
        validate(compose(["strategy=dropping", "strategy.policy=drift", "strategy.drift_cool=0.1"]))


def test_drift_cooling_run_sets_the_cooled_units_rate(small_cfg, tmp_path):
    cfg = small_cfg(["strategy=dropping", "strategy.policy=drift"],
                    {"epochs": 3, "strategy.drift_fit": 10.0, "strategy.drift_cool": 0.1, "strategy.drift_fit_share": 1.0})
    tr = Trainer(cfg, tmp_path / "run")
    row = tr.fit()
    assert "cool" in row["history"][0]["decision_reason"]  # fit gate 10 x: open at once
    lrs = [g["lr"] for g in tr.optimizer.param_groups]
    assert lrs[0] < lrs[-1]                                # the leading unit trains slower than the classifier


def test_drift_run_measures_the_probe_and_resumes(small_cfg, tmp_path):
    cfg = small_cfg(["strategy=dropping", "strategy.policy=drift"], {"epochs": 3, "strategy.drift_floor": 2.0})
    row = Trainer(cfg, tmp_path / "run").fit()
    h = row["history"]
    assert h[0]["decision"] == "cut"  # floor 2.0: every drift is under it, so all but the last conv go
    assert len(h[-1]["dropped_units"]) == len(row["unit_names"]) - 2
    assert "drift" in h[0] and "scores" not in h[0]  # it decides on the probe; no gradient scores paid for


@pytest.mark.parametrize("augment", [False, True])
def test_a_run_tells_drift_its_scheduled_rate_and_whether_it_augments(small_cfg, tmp_path, monkeypatch, augment):
    from fastdrop.policies.drift import Drift

    seen, decide = [], Drift.decide
    monkeypatch.setattr(Drift, "decide", lambda self, obs: seen.append((obs.lr, obs.augmented)) or decide(self, obs))
    cfg = small_cfg(["strategy=dropping", "strategy.policy=drift"],
                    {"epochs": 3, "optim.milestones": [2], "data.augment": augment})
    Trainer(cfg, tmp_path / "run").fit()
    lr = cfg.optim.lr
    assert seen == [(pytest.approx(lr), augment), (pytest.approx(lr), augment), (pytest.approx(lr / 10), augment)]


@pytest.mark.parametrize("policy, scored", [("drift", False), ("linear", False), ("learn_and_drop", True),
                                            ("autofreeze", True)])
def test_only_a_policy_that_decides_on_scores_pays_for_them(small_cfg, tmp_path, monkeypatch, policy, scored):
    from fastdrop.policies.scores import ScoreAccumulator

    calls = []
    acc = ScoreAccumulator.accumulate
    monkeypatch.setattr(ScoreAccumulator, "accumulate", lambda self: calls.append(1) or acc(self))
    row = Trainer(small_cfg(["strategy=dropping", f"strategy.policy={policy}"], {"epochs": 2}), tmp_path / "r").fit()
    h = row["history"]
    assert bool(calls) == scored and all(("scores" in e) == scored for e in h)
    assert all(e["decision"] for e in h)  # it still decides every epoch, on what it reads


def test_freezeout_sets_each_units_rate_in_the_optimiser(small_cfg, tmp_path):
    cfg = small_cfg(["strategy=freezing", "strategy.policy=freezeout"], {"epochs": 2})
    tr = Trainer(cfg, tmp_path / "run")
    assert len(tr.optimizer.param_groups) == len(tr.chain.units)
    tr.train_epoch(1)
    lrs = [g["lr"] for g in tr.optimizer.param_groups]
    n, bs = len(tr.data.train), tr.ctx.batch_size
    last = [i for i in range(0, n, bs) if n - i >= 2][-1]  # the last step of epoch 1 of 2 started here
    want = tr.strategy.policy.unit_lrs(last / n / 2, cfg.optim.lr, len(tr.chain.units))
    # conv1 freezes at 0.8^3 = 0.512 of the run: near the end of its cosine; the classifier (r = 1) midway
    assert 0 < lrs[0] < lrs[-1]
    assert lrs == pytest.approx(want, rel=1e-6)


def test_cosine_schedule_reaches_the_optimiser(small_cfg, tmp_path):
    cfg = small_cfg(["strategy=dropping", "strategy.policy=drift", "optim.schedule=cosine", "optim.milestones=[]"],
                    {"epochs": 3})
    tr = Trainer(cfg, tmp_path / "run")
    got = []
    for e in (1, 2, 3):
        tr.train_epoch(e)
        got.append(tr.optimizer.param_groups[0]["lr"] / cfg.optim.lr)
    assert got == pytest.approx([1.0, 0.75, 0.25])  # (1 + cos(pi (e - 1) / 3)) / 2


def test_sgd_keeps_one_optimiser_group(small_cfg, tmp_path):
    tr = Trainer(small_cfg(["strategy=dropping"]), tmp_path / "run")
    assert len(tr.optimizer.param_groups) == 1


def test_suite_schedules():
    assert schedule_overrides("step", 15, 15) == ["optim.milestones=[5]"]  # lr / 10 after the first third
    assert schedule_overrides("step", 7, 15) == ["optim.milestones=[2]"]   # 5 x 7/15 = 2.33
    assert schedule_overrides("cosine", 7, 15) == ["optim.schedule=cosine", "optim.milestones=[]"]


def test_a_suite_configs_own_values_win_over_the_common_ones(compose):
    """The overrides a suite row trains with: COMMON first, then the config's own (they once came the other way
    round, and the fine-tuning entry's lr 0.01 / batch 64 silently lost to COMMON's 0.05 / 128)."""
    from fastdrop.bench.suite import base_overrides

    ft = compose(base_overrides("vgg11-finetune", "/data", "/src"))
    assert (ft.optim.lr, ft.batch_size, ft.data.augment, ft.data.test_subset) == (0.05, 128, True, None)
    assert (ft.epochs, list(ft.optim.milestones), ft.model.weights) == (12, [4], "/src")
    assert compose(base_overrides("resnet50-mnist-lr02", "/data", "")).optim.lr == 0.02
    assert compose(base_overrides("resnet50-mnist", "/data", "")).optim.lr == 0.05


def test_frontier_and_convergence_helpers():
    pts = [(10.0, 90.0), (20.0, 95.0), (40.0, 97.0)]
    assert frontier_acc(pts, 5.0) == 90.0 and frontier_acc(pts, 15.0) == pytest.approx(92.5)
    assert frontier_acc(pts, 30.0) == pytest.approx(96.0) and frontier_acc(pts, 50.0) == 97.0
    row = {"history": [{"test_acc": a} for a in [10, 50, 80, 90, 95, 96, 96.5, 97]]}
    assert last_quarter_rise(row) == pytest.approx(97 - 96)  # 8 epochs: the last 2


def test_suite_takes_delta_t_against_sgd_before_and_after_the_variants():
    from fastdrop.bench.suite import _line

    def row(T, A, dropped):  # two epochs of equal work, then what `dropped` says
        hist = [{"epoch": e, "train_time_s": T / 2, "test_acc": A, "fwd_macs_per_sample": 10.0 - 5 * len(d),
                 "dropped_units": d} for e, d in ((1, []), (2, dropped))]
        return {"train_time_s": T, "A": A, "history": hist, "unit_macs_per_sample": [5.0, 5.0]}

    sgd, after, ours = row(100.0, 90.0, []), row(120.0, 90.0, []), row(55.0, 89.5, ["conv1"])
    base = _line("c", "sgd", 0, sgd, sgd, None, [110.0, 110.0], after)
    assert base["sgd_after_drift_pct"] == 20.0 and base["dT_pct"] == pytest.approx(9.1)
    line = _line("c", "drift (ours)", 0, ours, sgd, [(50.0, 80.0), (100.0, 90.0)], [110.0, 110.0])
    assert line["dT_pct"] == 50.0 and line["dT_robust_pct"] == 50.0 and line["dA"] == -0.5
    assert line["above_frontier"] == "yes"  # the frontier is at 81 at T = 55
    assert _line("c", "drift (ours)", 0, ours, sgd, None)["dT_pct"] == 45.0  # rows without the check: sgd's T


def test_a_suite_call_for_another_seed_keeps_the_seeds_already_run_in_its_table(tmp_path):
    import json

    import pandas as pd

    from fastdrop.bench.suite import main

    def row(tag, T, A):  # a completed sgd-like row: two epochs of equal work
        hist = [{"epoch": e, "train_time_s": T / 2, "test_acc": A, "fwd_macs_per_sample": 10.0,
                 "dropped_units": []} for e in (1, 2)]
        return {"tag": tag, "status": "completed", "train_time_s": T, "A": A, "history": hist,
                "unit_macs_per_sample": [5.0, 5.0], "milestones": [1]}

    runs = tmp_path / "runs"
    runs.mkdir()
    tags = ["s0-sgd", "s0-sgd-1_2", "s0-sgd-1_4", "s1-sgd"]  # seed 1 run later, without the frontier
    for i, t in enumerate(tags):
        (runs / f"{i}.json").write_text(json.dumps(row(f"suite-vgg11-mnist-{t}", 40.0 / (1 + i), 90.0 + i)))
    (runs / "x.json").write_text(json.dumps(row("suite-vgg11-mnist-cosine-s7-sgd", 1.0, 1.0)))  # another study
    main(["--out", str(tmp_path), "--data-root", "unused", "--seeds", "1", "--configs", "vgg11-mnist",
          "--table-only"])
    table = pd.read_csv(tmp_path / "suite.csv")
    assert sorted(set(table.seed)) == [0, 1] and (table.variant == "sgd").sum() == 2
    assert "--seeds 0 1 " in (tmp_path / "README.md").read_text()


def test_robust_time_replaces_a_burst_by_the_median_of_epochs_of_the_same_work():
    from fastdrop.bench.analysis import robust_time

    def ep(e, t, cut_after, cache=0.0):
        return {"epoch": e, "train_time_s": t, "cache_time_s": cache, "dropped_units": ["u"] * cut_after}
    # three full epochs, one of them slowed 3x by interference; a cut after epoch 3; the next epoch builds
    # the cache (1 s of its 2.5 s); then two cheap epochs
    row = {"history": [ep(1, 4.0, 0), ep(2, 12.0, 0), ep(3, 4.2, 1), ep(4, 2.5, 1, cache=1.0), ep(5, 1.4, 1),
                       ep(6, 1.5, 1)]}
    assert robust_time(row) == pytest.approx(3 * 4.2 + (1.5 + 1.0) + 1.5 + 1.5)  # medians 4.2 and 1.5
