"""The benchmark's arithmetic on hand-written rows: executed work, predicted and measured ΔT, efficiency."""
import pytest

from fastdrop.bench import run_work, summarise

MACS = [10, 20, 30, 40]  # three conv units + classifier, per sample


def row(name, times, fwd, cut_after, cache=None):
    cache = cache or [0.0] * len(times)
    hist = [{"epoch": i + 1, "train_time_s": t, "cache_time_s": c, "fwd_macs_per_sample": f,
             "dropped_units": ["u0", "u1", "u2"][:k]} for i, (t, f, k, c) in enumerate(zip(times, fwd, cut_after, cache))]
    return {"run_id": name, "unit_macs_per_sample": MACS, "history": hist, "train_time_s": sum(times),
            "cache_time_s": sum(cache), "A": 90.0, "train_images": 100}


def test_run_work_counts_forward_and_the_backward_of_trained_units():
    # epoch 1: all run and train: fwd 100 + wgrad 100 + igrad (100 - first unit 10) = 290
    # epoch 2 (dropping, unit 0 cut after epoch 1): fwd 90 + 2*90 - 20 = 250
    # epoch 2 (freezing): the frozen unit still runs forward: 100 + 2*90 - 20 = 260
    assert run_work(row("sgd", [1, 1], [100, 100], [0, 0])) == 580
    assert run_work(row("drop", [1, 1], [100, 90], [1, 1])) == 540
    assert run_work(row("freeze", [1, 1], [100, 100], [1, 1])) == 550


def test_summarise_predicted_and_measured():
    rows = {"sgd": row("sgd", [10, 10, 10], [100, 100, 100], [0, 0, 0]),
            "dropping": row("drop", [10, 6, 4], [100, 90, 90], [1, 1, 1], cache=(0.0, 1.0, 0.0))}
    out = {r["run"]: r for r in summarise(rows)}
    d = out["dropping"]
    assert d["dT_pct"] == pytest.approx(100 * 10 / 30, abs=0.05)
    pred = 1 - (290 + 250 + 250) / 870
    assert d["pred_dT_pct"] == pytest.approx(100 * pred, abs=0.05)
    assert d["efficiency"] == pytest.approx((10 / 30) / pred, abs=1e-3)
    assert d["first_drop_epoch"] == 1 and d["units_cut"] == 1
    assert d["epoch_s_before_drop"] == 10 and d["epoch_s_after_drop"] == 4  # the cache-building epoch excluded
    assert d["cache_pct_of_T"] == pytest.approx(100 / 20, abs=0.01)
    assert out["sgd"]["efficiency"] is None and out["sgd"]["first_drop_epoch"] is None
