"""Adding a network, dataset, strategy, cut policy or cache backend is one module: the toy entries in tests/toys/
register themselves, become command-line choices, pass validation, train, and are read by the report."""
from __future__ import annotations

import importlib
import sys

import pytest
from conftest import compose_config, shrink

from fastdrop.data import DATASETS
from fastdrop.models import MODELS
from fastdrop.registry import Registry
from fastdrop.report import family, label, load_rows, strategies
from fastdrop.strategies import STRATEGIES
from fastdrop.strategies.cache.backends import CACHE_BACKENDS
from fastdrop.policies import POLICIES
from fastdrop.run.trainer import Trainer

TOYS = {"toy_model": (MODELS, "toy_net"), "toy_data": (DATASETS, "toy_data"),
        "toy_strategy": (STRATEGIES, "toy_strategy"), "toy_backend": (CACHE_BACKENDS, "toy_backend"),
        "toy_policy": (POLICIES, "toy_policy")}


@pytest.fixture(scope="module")
def toys():
    mods = {m: importlib.import_module(f"toys.{m}") for m in TOYS}
    yield mods
    for m, (registry, name) in TOYS.items():
        registry.unregister(name)
        sys.modules.pop(f"toys.{m}", None)


def _tiny(tmp_path, overrides, extra=None):
    # The toy data has 96/32 images: no subsets; width 1.0 (8 channels) is already tiny.
    return shrink(compose_config(["model=toy_net", "data=toy_data", *overrides]), tmp_path,
                  {"data.train_subset": None, "data.test_subset": None, "model.width": 1.0, "batch_size": 32,
                   **(extra or {})})


def test_toy_model_data_and_backend_train_with_dropping(toys, tmp_path):
    cfg = _tiny(tmp_path, ["strategy=dropping", "strategy.policy=schedule", "strategy.schedule={1:1}",
                           "strategy.cache.backend=toy_backend"])
    before = toys["toy_backend"].ToyBackend.fetched
    row = Trainer(cfg, tmp_path / "run").fit()
    assert (row["status"], row["model"], row["data"]) == ("completed", "toy_net", "toy_data")
    assert row["model_family"] == "toy" and family("toy_net") == "toy"
    assert len(row["history"][-1]["dropped_units"]) == 1
    assert row["history"][-1]["cache_backend"] == "toy_backend"
    assert toys["toy_backend"].ToyBackend.fetched - before == 96  # epoch 2 trained from the toy cache


def test_toy_strategy_is_a_choice_the_trainer_runs_and_the_report_reads(toys, tmp_path):
    cls = toys["toy_strategy"].ToyStrategy
    before = cls.steps
    row = Trainer(_tiny(tmp_path, ["strategy=toy_strategy"]), tmp_path / "run").fit()
    assert row["status"] == "completed" and row["strategy"] == "toy_strategy"
    assert cls.steps - before == 2 * 3  # 2 epochs x 96 images / batch 32
    assert "toy_strategy" in strategies() and label("toy_strategy") == "Toy"
    df, warnings = load_rows(tmp_path / "results")
    assert list(df["strategy"]) == ["toy_strategy"] and not warnings


def test_toy_policy_decides_the_cuts_and_keeps_its_state(toys, tmp_path):
    cfg = _tiny(tmp_path, ["strategy=freezing", "strategy.policy=toy_policy"], {"epochs": 3})
    t = Trainer(cfg, tmp_path / "run")
    row = t.fit()
    assert row["status"] == "completed" and row["policy"] == "toy_policy"
    # two conv units: the first epoch cuts one, then only the last conv unit is left
    assert [len(h["dropped_units"]) for h in row["history"]] == [1, 1, 1]
    assert t.strategy.policy.decisions == 3 and t.strategy.policy.state_dict() == {"decisions": 3}


def test_registry_refuses_a_second_entry_of_one_name_and_lists_choices():
    r = Registry("widget")
    r.register("a")(object)
    with pytest.raises(ValueError, match="registered twice"):
        r.register("a")(object)
    with pytest.raises(KeyError, match="unknown widget 'b'; choose one of a"):
        r.get_or_fail("b", KeyError)
    assert r.order("a") == 0 and r.order("zzz") == 1 and r.choices() == "a"
