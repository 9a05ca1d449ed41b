"""The benchmark's arithmetic on hand-written rows: executed work, predicted and measured ΔT, efficiency,
the identical-work check that refuses a ΔT drift can explain, time-to-accuracy and equal-time SGD."""
import pytest

from fastdrop.bench.analysis import (default_variants, equal_time_epochs, identical_work_ratio, run_work, scaled_milestones,
                            summarise, time_to_accuracy, variant_overrides)
from fastdrop.policies import CutPolicy, register_policy
from fastdrop.registry import POLICIES

MACS = [10, 20, 30, 40]  # three conv units + classifier, per sample


def row(name, times, fwd, cut_after, cache=None, acc=None):
    cache = cache or [0.0] * len(times)
    acc = acc or [90.0] * len(times)
    hist = [{"epoch": i + 1, "train_time_s": t, "cache_time_s": c, "fwd_macs_per_sample": f, "test_acc": a,
             "dropped_units": ["u0", "u1", "u2"][:k]}
            for i, (t, f, k, c, a) in enumerate(zip(times, fwd, cut_after, cache, acc))]
    return {"run_id": name, "unit_macs_per_sample": MACS, "history": hist, "train_time_s": sum(times),
            "cache_time_s": sum(cache), "A": acc[-1], "train_images": 100}


def test_run_work_counts_forward_and_the_backward_of_trained_units():
    # epoch 1: all run and train: fwd 100 + wgrad 100 + igrad (100 - first unit 10) = 290
    # epoch 2 (dropping, unit 0 cut after epoch 1): fwd 90 + 2*90 - 20 = 250
    # epoch 2 (freezing): the frozen unit still runs forward: 100 + 2*90 - 20 = 260
    assert run_work(row("sgd", [1, 1], [100, 100], [0, 0])) == 580
    assert run_work(row("drop", [1, 1], [100, 90], [1, 1])) == 540
    assert run_work(row("freeze", [1, 1], [100, 100], [1, 1])) == 550


def test_summarise_predicted_and_measured():
    rows = {"sgd": [row("sgd", [10, 10, 10, 10], [100] * 4, [0, 0, 0, 0])],
            "dropping": [row("drop", [10, 6, 4, 4], [100, 90, 90, 90], [1, 1, 1, 1], cache=(0.0, 1.0, 0.0, 0.0))]}
    out = {r["variant"]: r for r in summarise(rows, {}, 0.05, 1.0)}
    d = out["dropping"]
    assert d["dT_pct"] == pytest.approx(100 * 16 / 40, abs=0.05)
    pred = 1 - (290 + 250 * 3) / (290 * 4)
    assert d["pred_dT_pct"] == pytest.approx(100 * pred, abs=0.05)
    assert d["efficiency"] == pytest.approx((16 / 40) / pred, abs=0.01)
    assert d["first_cut_epoch"] == 1 and d["units_cut"] == 1 and d["identical_work_ratio"] == 1.0
    assert d["epoch_s_before_cut"] == 10 and d["epoch_s_after_cut"] == 4  # the cache-building epoch excluded
    assert d["cache_pct_of_T"] == pytest.approx(100 / 24, abs=0.01)
    assert out["sgd"]["efficiency"] is None and out["sgd"]["first_cut_epoch"] is None


def test_delta_t_is_refused_when_identical_work_epochs_disagree():
    # Same work in epochs 1-2 (cut at the end of epoch 2), but the variant's took 8 % longer: drift.
    sgd = [row("sgd", [10, 10, 10, 10], [100] * 4, [0] * 4), row("sgd", [10, 10, 10, 10], [100] * 4, [0] * 4)]
    slow = [row("d", [10.8, 10.8, 3, 3], [100, 100, 90, 90], [0, 1, 1, 1])] * 2
    assert identical_work_ratio(slow[0], sgd[0]) == pytest.approx(1.08)
    out = {r["variant"]: r for r in summarise({"sgd": sgd, "dropping": slow}, {}, 0.05, 1.0)}
    assert str(out["dropping"]["dT_pct"]).startswith("invalid: identical-work epochs differ +8.0 %")
    assert out["dropping"]["efficiency"] is None
    ok = [row("d", [10.3, 10.3, 3, 3], [100, 100, 90, 90], [0, 1, 1, 1])] * 2
    out = {r["variant"]: r for r in summarise({"sgd": sgd, "dropping": ok}, {}, 0.05, 1.0)}
    assert out["dropping"]["dT_pct"] == pytest.approx(100 * (40 - 26.6) / 40, abs=0.05)


def test_time_to_accuracy_and_equal_time_sgd():
    r = row("d", [5, 5, 2, 2], [100] * 4, [0] * 4, acc=[50.0, 96.0, 97.5, 97.0])
    assert time_to_accuracy(r, 97.0) == 12 and time_to_accuracy(r, 96.0) == 10
    assert time_to_accuracy(r, 99.0) is None
    assert equal_time_epochs(40.0, 100.0, 12) == 5 and equal_time_epochs(1.0, 100.0, 12) == 1
    sgd = [row("sgd", [5] * 4, [100] * 4, [0] * 4, acc=[50.0, 90.0, 97.0, 98.0])]
    out = {r["variant"]: r for r in summarise({"sgd": sgd, "dropping": [r]}, {"dropping": {"epochs": 2, "A": 90.0}},
                                                0.05, 1.0)}
    assert out["dropping"]["time_to_target_s"] == 12 and out["sgd"]["time_to_target_s"] == 15  # target 97.0
    assert out["dropping"]["equal_time_sgd_A"] == 90.0 and out["sgd"]["equal_time_sgd_A"] is None


def test_sgd_baseline_runs_without_scores():
    assert variant_overrides("sgd") == ["strategy=sgd", "strategy.scores=false"]
    assert variant_overrides("dropping:noise_level") == ["strategy=dropping", "strategy.policy=noise_level"]


def test_default_variants_come_from_the_registries():
    assert default_variants() == ["sgd", "freezing", "dropping", "dropping:drift"]

    class Benched(CutPolicy):
        name, benched = "benched_toy", True

    register_policy(Benched)
    try:
        assert default_variants()[-1] == "dropping:benched_toy"
    finally:
        POLICIES.unregister("benched_toy")


def test_scaled_milestones_keep_only_those_inside_the_shorter_run():
    assert scaled_milestones([12], 7, 16) == [5]      # 12 x 7/16 = 5.25
    assert scaled_milestones([7], 10, 10) == [7]
    assert scaled_milestones([7], 1, 10) == []        # round(0.7) = 1 is not inside a 1-epoch run
    assert scaled_milestones([2, 8], 5, 10) == [1, 4]


def test_reference_loop_trains_the_same_module_and_is_compared_by_fastest_epoch(small_cfg, tmp_path):
    from fastdrop.bench.analysis import reference_line
    from fastdrop.bench.reference import reference_epoch_times
    from fastdrop.run.trainer import Trainer

    tr = Trainer(small_cfg(["strategy=sgd", "strategy.scores=false"]), tmp_path / "run")
    times = reference_epoch_times(tr.cfg, tr.data, tr.device, 2)
    assert len(times) == 2 and all(t > 0 for t in times)
    rows = [{"history": [{"train_time_s": 2.0}, {"train_time_s": 1.5}]}]
    assert reference_line(rows, [1.2, 1.0])["sgd_over_reference"] == 1.5


def test_alternated_blocks_time_both_loops_in_turn_without_scores_and_see_a_slow_step(small_cfg, tmp_path,
                                                                                    monkeypatch):
    import time

    from fastdrop.bench.reference import alternated_blocks
    from fastdrop.run.trainer import Trainer

    tr = Trainer(small_cfg(["strategy=sgd", "strategy.scores=false"]), tmp_path / "run")
    step, scored = tr.step, []

    def slow_step(state, y, score=True):  # fastdrop's step made 0.2 s slower: the ratio must show it
        scored.append(score)
        time.sleep(0.2)
        return step(state, y, score)

    monkeypatch.setattr(tr, "step", slow_step)
    alt = alternated_blocks(tr, steps=2, repeats=3)
    assert len(scored) == 2 * (1 + 3) and not any(scored)  # warm-up + 3 blocks of 2 steps, never scoring
    lo, hi = alt["ratio_range"]
    assert 1.5 < lo <= alt["sgd_over_reference"] <= hi
    assert alt["sgd_step_s"] > alt["reference_step_s"] + 0.15
