"""Shared test fixtures: the real Hydra config from conf/, a shrinker that makes any composed config cheap
enough for a 2-core CPU, and the optional real data beside the project (../shared/data)."""
from __future__ import annotations

from pathlib import Path

import os

import hydra
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from fastdrop.config import register_configs

# The test machines share their few cores with timing benchmarks; intra-op threads that spin-wait for a
# busy core made tiny forward passes 100x slower (7 s instead of 0.06 s for a ResNet-101 at width 1/8).
# The tests check results, not speed, so one thread unless FASTDROP_TEST_THREADS says otherwise.
torch.set_num_threads(int(os.environ.get("FASTDROP_TEST_THREADS", "1")))

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
# Real datasets some developers and CI machines have next to the checkout; never required.
SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"

# What `shrink` applies. warmup must stay below epochs or validate() rejects freezing/dropping.
TINY = {
    "model.width": 0.125,
    "data.train_subset": 256,
    "data.test_subset": 64,
    "epochs": 2,
    "batch_size": 64,
    "strategy.warmup": 1,
    "progress": False,
    "device": "cpu",
}


def compose_config(overrides: list[str] | None = None, return_hydra: bool = False) -> DictConfig:
    """The config `fastdrop run <overrides>` would run with (same files, same schema); with
    `return_hydra` also its `hydra` node (launcher, sweeper)."""
    register_configs()
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return hydra.compose("config", overrides=list(overrides or []), return_hydra_config=return_hydra)


def tiny_overrides(tmp_path: Path) -> list[str]:
    """`TINY` as command-line overrides, for subprocess runs of the real CLI."""
    ov = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in TINY.items()]
    return ov + [f"results_dir={tmp_path / 'results'}"]


def shrink(cfg: DictConfig, tmp_path: Path, extra: dict | None = None) -> DictConfig:
    """Make a composed config cheap: tiny width, subsets and epochs; results under tmp_path. `extra`
    ({"epochs": 3, ...}) wins over the tiny values.

    Goes through OmegaConf.update so the schema still type-checks every value."""
    values = {**TINY, "results_dir": str(tmp_path / "results"), **(extra or {})}
    for key, value in values.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


@pytest.fixture
def compose():
    """compose(overrides) -> the real composed config."""
    return compose_config


@pytest.fixture
def small_cfg(tmp_path):
    """small_cfg(overrides, extra) -> composed config already shrunk into tmp_path."""

    def make(overrides: list[str] | None = None, extra: dict | None = None) -> DictConfig:
        return shrink(compose_config(overrides), tmp_path, extra)

    return make


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"no real data at {SHARED_DATA} (optional: see ../shared/data/README.md)")
    return SHARED_DATA
