"""The streaming path (fastdrop.data.streaming): a folder dataset decoded once into a memory-mapped
file and read by DataLoader workers trains exactly like the same split held in memory."""
import json

import numpy as np
import pytest
import torch
from conftest import compose_config
from PIL import Image

from fastdrop.data import StreamPolicy, StreamSplit, load_data
from fastdrop.run.trainer import Trainer

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def jpeg_root(tmp_path_factory):
    """A CIFAR-10-JPEG-shaped folder: a colour per class plus noise, 32x32 JPEG (quality 75)."""
    root = tmp_path_factory.mktemp("jpeg")
    rng = np.random.default_rng(0)
    for split, per in (("train", 12), ("test", 4)):
        for c, name in enumerate(CLASSES):
            d = root / "cifar10-jpeg" / split / name
            d.mkdir(parents=True)
            base = np.array([25 * c, 255 - 25 * c, (80 * c) % 256])
            for i in range(per):
                img = np.clip(base + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i:04d}.jpg", quality=75)
    return root


def test_streamed_split_holds_the_in_memory_bytes(jpeg_root):
    mem = load_data("cifar10_jpeg", str(jpeg_root), stream=StreamPolicy(stream=False))
    st = load_data("cifar10_jpeg", str(jpeg_root), train_subset=60, stream=StreamPolicy(memory_budget_gb=1e-6))
    assert isinstance(st.train, StreamSplit) and st.streaming and not mem.streaming  # above the budget: streams
    assert not load_data("cifar10_jpeg", str(jpeg_root), stream=StreamPolicy(memory_budget_gb=1.0)).streaming
    full = load_data("cifar10_jpeg", str(jpeg_root), stream=StreamPolicy(stream=True))
    assert torch.equal(torch.cat(list(full.train.batches([slice(0, 50), slice(50, 120)]))), mem.train.x)
    assert torch.equal(full.train.y, mem.train.y)
    idx = torch.tensor([7, 3, 99, 3])
    assert torch.equal(full.train.fetch(idx), mem.train.x[idx])
    sub = mem.train.sample(60, 0)  # the same seeded class-balanced subset, as row numbers into the map
    assert torch.equal(st.train.fetch(slice(0, 60)), sub.x) and torch.equal(st.train.y, sub.y)
    meta = json.loads((jpeg_root / "cifar10-jpeg" / ".fastdrop-train-32.json").read_text())
    assert meta["shape"] == [120, 3, 32, 32]  # decoded once, mapped again by the later loads


@pytest.mark.parametrize("policy", ["learn_and_drop", "schedule"])
def test_streaming_dropping_with_disk_cache_matches_in_memory(jpeg_root, tmp_path, policy):
    ov = ["progress=false", "data=cifar10_jpeg", f"data.root={jpeg_root}", "model.width=0.125", "batch_size=32",
          "epochs=4", "strategy=dropping", "strategy.warmup=1", f"strategy.policy={policy}",
          "strategy.schedule={2:2}", "optim.lr=0.02", "device=cpu", f"results_dir={tmp_path}/results"]
    mem = Trainer(compose_config([*ov, "data.stream=false"]), tmp_path / "mem")
    rm = mem.fit()
    st = Trainer(compose_config([*ov, "data.stream=true", "data.workers=2"]), tmp_path / "stream")
    rs = st.fit()
    assert st.data.streaming and not mem.data.streaming
    assert [h["dropped_units"] for h in rs["history"]] == [h["dropped_units"] for h in rm["history"]]
    assert [h["train_loss"] for h in rs["history"]] == [h["train_loss"] for h in rm["history"]]
    for k, v in mem.chain.state_dict().items():
        assert torch.equal(st.chain.state_dict()[k], v), k
    cached = [h for h in rs["history"] if "cache_backend" in h]
    assert all(h["cache_backend"] == "disk" for h in cached)  # cache.backend=auto goes to disk when streaming
    if policy == "schedule":
        assert cached and rs["history"][-1]["dropped_units"] == ["conv1", "conv2"]


def test_stream_true_on_a_dataset_loaded_whole_is_one_line(tmp_path):
    with pytest.raises(Exception, match="needs a folder"):
        load_data("mnist_mini", str(tmp_path), stream=StreamPolicy(stream=True))


def test_data_folder_streams_too(jpeg_root):
    root = str(jpeg_root / "cifar10-jpeg")  # an ImageFolder tree: train/<class>, test/<class>
    mem = load_data("folder", root, image_size=32, stream=StreamPolicy(stream=False))
    st = load_data("folder", root, image_size=32, stream=StreamPolicy(stream=True), memory_budget_gb=1e-6)
    assert st.streaming and st.classes == mem.classes == tuple(CLASSES)  # over the budget: streams, no error
    assert torch.equal(st.train.fetch(slice(0, 120)), mem.train.x) and torch.equal(st.test.y, mem.test.y)
    assert st.mean == pytest.approx(mem.mean) and st.std == pytest.approx(mem.std)  # train stats, read in batches
