"""No silent wrong inputs, nothing left behind: ImageData / fastdrop.api.fit checks, the MNIST reader's
stale and short files, schedules that cannot do what they say, the checkpoint policy, empty cache
folders and the file modes of what fastdrop writes into a data root."""
import gzip
import json
import logging
import os
import stat
import struct
import tempfile

import numpy as np
import pytest
import torch
from torch import nn

from fastdrop.api import fit
from fastdrop.data import DataError, ImageData, Split, load_data
from fastdrop.data.mnist import MNIST_FILES
from fastdrop.files import atomic_write_text
from fastdrop.run.trainer import Trainer
from fastdrop.config.validate import cut_schedule_warnings, validate
from fastdrop.errors import ConfigError

FAST = ["epochs=2", "batch_size=32", "progress=false", "device=cpu", "strategy.warmup=1"]


def toy(n=64, c=1, size=12, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % classes
    return x, y


def toy_data(**kw):
    x, y = toy(**kw)
    return ImageData("toy", Split(x, y), Split(x[:16], y[:16]), mean=(0.5,), std=(0.25,))


def nested_model():
    """Blocks and a classifier each wrapped in their own Sequential (a common way to write a CNN)."""
    return nn.Sequential(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
                         nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
                         nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)))


# -- ImageData and fit() --------------------------------------------------------------------------------
@pytest.mark.parametrize("make, words", [
    (lambda x, y: (x.float() / 255, y), "convert with (x * 255).round().clamp(0, 255).to(torch.uint8)"),
    (lambda x, y: (x.float(), y), "convert with x.round().clamp(0, 255).to(torch.uint8)"),
    (lambda x, y: (x[:, 0], y), "4-D tensor [N, C, H, W]"),
    (lambda x, y: (x, y.float()), "integer class indices"),
    (lambda x, y: (x, y + 5), "[0, num_classes) = [0, 10) (got labels in [5, 14])"),
    (lambda x, y: (x, y[:-1]), "one label per image"),
])
def test_image_data_rejects_what_would_train_wrong(make, words):
    x, y = make(*toy())
    with pytest.raises(ValueError) as info:
        ImageData("bad", Split(x, y), Split(x[:8], y[:8]), mean=(0.5,), std=(0.25,))
    assert words in str(info.value) and "\n" not in str(info.value)


def test_image_data_takes_any_integer_labels_as_int64():
    x, y = toy()
    data = ImageData("i32", Split(x, y.int()), Split(x, y.to(torch.uint8)), mean=(0.5,), std=(0.25,))
    assert data.train.y.dtype == data.test.y.dtype == torch.int64 and torch.equal(data.train.y, y)
    with pytest.raises(ValueError, match="one value per channel"):
        ImageData("stats", Split(x, y), Split(x, y), mean=(0.5, 0.5, 0.5), std=(0.25,))


def test_fit_checks_everything_before_writing_anything(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    data = toy_data()
    x, y = toy()
    data.train = Split(x, y.float())  # changed after construction: fit checks again
    with pytest.raises(ValueError, match="integer class indices"):
        fit(nested_model(), data, *FAST)
    wrong_head = nested_model()
    wrong_head[2][2] = nn.Linear(8, 7)
    with pytest.raises(ValueError, match="num_classes=10: its last layer must have 10 outputs"):
        fit(wrong_head, toy_data(), *FAST)
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        fit(nested_model(), toy_data(), "+epoch=3")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["tmp"]  # no row, no run dir, no temp dir


def test_fit_with_a_nested_classifier_writes_only_the_row(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    row = fit(nested_model(), toy_data(), *FAST, f"results_dir={tmp_path / 'res'}")
    assert row["status"] == "completed" and row["unit_names"] == ["conv0", "conv1", "classifier"]
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()] == \
        [f"res/runs/{row['run_id']}.json"]
    assert not list((tmp_path / "tmp").iterdir())  # the temporary run directory is gone


def test_a_classifier_inside_the_last_conv_block_gets_an_exact_message():
    from fastdrop.models import as_chain

    seq = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sequential(nn.Conv2d(4, 4, 3), nn.Flatten(), nn.Linear(4, 10)))
    with pytest.raises(ValueError, match="or an nn.Sequential starting with one"):
        as_chain(seq)


# -- MNIST reader -----------------------------------------------------------------------------------------
def idx(values: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, values.ndim) + struct.pack(f">{values.ndim}I", *values.shape) + \
        values.astype(np.uint8).tobytes()


def write_mnist(root, seed=0, short=False):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in MNIST_FILES:
        n = 20 if name.startswith("train") else 10
        arr = rng.integers(0, 256, (n, 28, 28)) if "images" in name else np.arange(n) % 10
        blob = idx(arr)
        if short and name == "train-images-idx3-ubyte":
            blob = blob[: len(blob) // 2]  # a valid gzip of a cut file
        (raw / f"{name}.gz").write_bytes(gzip.compress(blob))
    return raw


def test_mnist_short_archive_is_named_and_a_restored_one_is_extracted_again(tmp_path):
    raw = write_mnist(tmp_path, short=True)
    with pytest.raises(DataError) as info:
        load_data("mnist", str(tmp_path))
    msg = str(info.value)
    assert f"{raw / 'train-images-idx3-ubyte.gz'} is incomplete" in msg and "replace it with a complete copy" in msg
    assert "20 x 28 x 28" in msg

    write_mnist(tmp_path, seed=0)  # the archive restored
    first = load_data("mnist", str(tmp_path))
    assert len(first.train) == 20
    os.utime(raw / "train-images-idx3-ubyte.gz", ns=(1, 1))
    write_mnist(tmp_path, seed=1)  # another version of the archives: the extracted files must follow
    second = load_data("mnist", str(tmp_path))
    assert not torch.equal(first.train.x, second.train.x)
    want = np.frombuffer(gzip.decompress((raw / "train-images-idx3-ubyte.gz").read_bytes())[16:], np.uint8)
    assert torch.equal(second.train.x.sort(0).values.flatten(),
                       torch.from_numpy(want.copy()).view(20, 1, 28, 28).sort(0).values.flatten())


def test_mnist_damaged_extracted_file_is_named(tmp_path):
    raw = write_mnist(tmp_path)
    for name in MNIST_FILES:
        (raw / name).write_bytes(gzip.decompress((raw / f"{name}.gz").read_bytes()))
        (raw / f"{name}.gz").unlink()
    f = raw / "t10k-labels-idx1-ubyte"
    f.write_bytes(f.read_bytes()[:-3])
    with pytest.raises(DataError, match=f"MNIST file {f} is damaged: its header says 10 values"):
        load_data("mnist", str(tmp_path))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_files_written_keep_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        raw = write_mnist(tmp_path)
        load_data("mnist", str(tmp_path))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == mode
    assert stat.S_IMODE((raw / "train-images-idx3-ubyte").stat().st_mode) == mode


# -- schedules ----------------------------------------------------------------------------------------------
def test_schedule_policy_without_a_schedule_is_an_error(small_cfg):
    with pytest.raises(ConfigError, match="strategy.policy=schedule needs strategy.schedule"):
        validate(small_cfg(["strategy=dropping", "strategy.policy=schedule"]))
    validate(small_cfg(["strategy=sgd", "strategy.policy=schedule"]))  # sgd never cuts: nothing to ask for


@pytest.mark.parametrize("overrides, words", [
    (["strategy=sgd", "strategy.schedule={1:3}"], ["ignored: strategy=sgd never cuts"]),
    (["strategy=freezing", "strategy.schedule={1:3}"], ["ignored: strategy.policy is learn_and_drop"]),
    (["strategy=freezing", "strategy.policy=schedule", "strategy.schedule={1:100}"],
     ["entry 1:100 asks for more units than can be cut: the model has 8 conv units", "so 8 are cut"]),
    (["strategy=freezing", "strategy.policy=schedule", "strategy.schedule={1:3,2:2,4:5}"],
     ["entry 2:2 has no effect: 3 units are already cut", "entry 4:5 has no effect: a cut from the end of epoch 4"]),
])
def test_schedule_without_effect_is_a_warning(small_cfg, overrides, words):
    got = " | ".join(cut_schedule_warnings(small_cfg(overrides, {"epochs": 4}), n_conv=8))
    for w in words:
        assert w in got
    cfg = small_cfg(["strategy=dropping", "strategy.policy=schedule", "strategy.schedule={1:3}"])
    assert cut_schedule_warnings(cfg, n_conv=8) == []


def test_schedule_warning_reaches_log_and_row(small_cfg, tmp_path, caplog):
    cfg = small_cfg(["strategy=freezing", "strategy.policy=schedule", "strategy.schedule={1:100}"])
    with caplog.at_level(logging.WARNING):
        row = Trainer(cfg, tmp_path / "run").fit()
    assert row["history"][-1]["dropped_units"] == row["unit_names"][:8]  # every conv unit
    assert any("asks for more units than can be cut" in w for w in row["warnings"])
    assert "asks for more units than can be cut" in caplog.text


# -- checkpoint policy and leftovers ------------------------------------------------------------------------
@pytest.mark.parametrize("policy, left", [("last", ["weights.pt"]), ("keep", ["checkpoint.pt"]), ("none", []),
                                          ("every", ["checkpoint-epoch1.pt", "checkpoint-epoch2.pt", "checkpoint.pt"])])
def test_checkpoint_policy(small_cfg, tmp_path, policy, left):
    over = ["strategy=dropping", "strategy.policy=schedule", "strategy.schedule={1:2}", "strategy.cache.backend=disk",
            f"checkpoint={policy}"]
    t = Trainer(small_cfg(over), tmp_path / "run")
    row = t.fit()
    assert row["status"] == "completed"
    from fastdrop.files import LOCK  # the run-directory lock file stays on purpose (README)

    left_over = sorted(p.name for p in (tmp_path / "run").iterdir() if p.name not in ("metrics.csv", LOCK))
    assert left_over == left  # no empty feature_cache/ either
    if policy == "every":
        first = torch.load(tmp_path / "run" / "checkpoint-epoch1.pt", weights_only=False)
        assert first["epoch"] == 1
    if policy == "last":  # the final weights, alone
        final = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
        assert final.keys() == t.chain.state_dict().keys()
        assert all(torch.equal(final[k], v) for k, v in t.chain.state_dict().items())


def test_resume_needs_a_checkpoint_policy(small_cfg):
    with pytest.raises(ConfigError, match="resume=true needs a checkpoint"):
        validate(small_cfg(["checkpoint=none", "resume=true"]))
    with pytest.raises(ConfigError, match="checkpoint must be one of last, keep, every, none"):
        validate(small_cfg(["checkpoint=all"]))
