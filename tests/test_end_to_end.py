"""End to end through the real CLI entry points: the offline default, a run on the real MNIST files when
they are next to the checkout, and the GPU smoke test where a GPU exists."""
import json
import shutil

import pytest
import torch
from conftest import compose_config, shrink

from fastdrop.run.trainer import Trainer


@pytest.mark.slow
def test_trains_on_real_mnist_files(tmp_path, shared_data):
    root = tmp_path / "data"
    shutil.copytree(shared_data / "MNIST", root / "MNIST")
    cfg = shrink(compose_config(["data=mnist", f"data.root={root}", "strategy=dropping"]), tmp_path,
                 {"data.train_subset": 2048, "data.test_subset": 500, "epochs": 3, "batch_size": 128,
                  "model.width": 0.25, "strategy.warmup": 1})
    row = Trainer(cfg, tmp_path / "run").fit()
    assert row["status"] == "completed" and row["data"] == "mnist"
    assert row["A"] > 50.0, row["A"]  # far above chance (10 %) after three short epochs
    assert json.loads((tmp_path / "results" / "runs" / f"{row['run_id']}.json").read_text())["A"] == row["A"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("strategy", ["sgd", "freezing", "dropping"])
def test_gpu_bf16_channels_last(tmp_path, strategy):
    cfg = shrink(compose_config([f"strategy={strategy}", "model=resnet18", "precision=bf16-mixed",
                                 "strategy.policy=schedule", "strategy.schedule={1:4}"]),
                 tmp_path, {"device": "cuda", "epochs": 3})
    row = Trainer(cfg, tmp_path / "run").fit()
    assert row["status"] == "completed" and "cuda" in row["device"]
