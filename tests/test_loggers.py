"""`logger=csv|tensorboard` write every epoch's metrics while the run trains, and the logger's own reader
(csv, TensorBoard's EventAccumulator) returns exactly what the result row holds."""
from __future__ import annotations

import csv

import pytest
from conftest import compose_config, shrink

from fastdrop.results.loggers import METRICS, metrics
from fastdrop.run.hooks import CALLBACKS
from fastdrop.run.trainer import Trainer

CUT = ["strategy=dropping", "strategy.policy=schedule", "strategy.schedule={1:2}"]


def _fit(tmp_path, logger):
    cfg = shrink(compose_config([*CUT, f"logger={logger}"]), tmp_path, {"epochs": 2})
    t = Trainer(cfg, tmp_path / "run")
    return t, t.fit()


def test_csv_logger_writes_each_epoch_during_the_run(tmp_path):
    lines_seen = []

    def peek(t, epoch, rec):  # after each epoch, the file already holds that epoch
        lines_seen.append(len((t.run_dir / "metrics.csv").read_text().splitlines()))

    CALLBACKS.append(peek)
    try:
        t, row = _fit(tmp_path, "csv")
    finally:
        CALLBACKS.remove(peek)
    assert lines_seen == [2, 3]  # header + one line per finished epoch
    with open(t.run_dir / "metrics.csv") as f:
        got = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in got] == [1, 2] and list(got[0]) == ["epoch", *METRICS]
    for r, h in zip(got, row["history"]):
        assert {k: float(r[k]) for k in METRICS} == pytest.approx(metrics(h))
    assert [float(r["model/units_cut"]) for r in got] == [2, 2]


def test_no_logger_writes_nothing(tmp_path):
    t, row = _fit(tmp_path, "none")
    assert row["status"] == "completed" and not (t.run_dir / "metrics.csv").exists()
    assert not (t.run_dir / "tensorboard").exists()


def test_tensorboard_events_read_back_with_tensorboards_reader(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    t, row = _fit(tmp_path, "tensorboard")
    acc = EventAccumulator(str(t.run_dir / "tensorboard"))
    acc.Reload()
    assert set(METRICS) <= set(acc.Tags()["scalars"])
    for name in METRICS:
        events = acc.Scalars(name)
        assert [e.step for e in events] == [1, 2]
        assert [e.value for e in events] == pytest.approx([metrics(h)[name] for h in row["history"]], rel=1e-6)
    assert [e.value for e in acc.Scalars("model/units_cut")] == [2, 2]
