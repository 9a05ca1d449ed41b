"""Runs that fail, fail loudly and cleanly: one line and exit != 0 for bad input, a row with the status
for runs that stop, a damaged or missing cache detected and rebuilt or reported - never read as garbage."""
import gzip
import json
import logging
from pathlib import Path

import pytest
import torch
from conftest import cli_in_process, compose_config, shrink, tiny_overrides

from fastdrop.strategies.cache import backends
from fastdrop.strategies.cache import CacheError, FeatureCache
from fastdrop.run.trainer import Trainer


def cli(tmp_path, *args):
    # In this process: what the CLI prints and exits with needs no process of its own (saves the imports).
    return cli_in_process(["run", *tiny_overrides(tmp_path), *args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)


def write_truncated_mnist(root: Path):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"]:
        blob = gzip.compress(b"\x00" * 4096)
        (raw / f"{name}.gz").write_bytes(blob[: len(blob) // 2])  # cut mid-stream


# Each case: CLI arguments (after a setup step) -> what the one error line must mention.
CASES = {
    "unwritable results_dir": (lambda t: (t / "afile").write_text("x") and [f"results_dir={t / 'afile'}"],
                               "not writable"),
    "missing dataset": (lambda t: ["data=mnist", f"data.root={t / 'nodata'}"], "MNIST not found"),
    "truncated MNIST .gz": (lambda t: write_truncated_mnist(t / "d") or ["data=mnist", f"data.root={t / 'd'}"],
                            "corrupted"),
    "zero epochs": (lambda t: ["epochs=0"], "epochs must be > 0"),
    "negative batch size": (lambda t: ["batch_size=-4"], "batch_size must be > 0"),
    "zero lr": (lambda t: ["optim.lr=0"], "optim.lr must be > 0"),
    "warm-up >= epochs": (lambda t: ["strategy=dropping", "strategy.warmup=2"], "warmup"),
    "bad schedule": (lambda t: ["strategy=dropping", "strategy.policy=schedule", "strategy.schedule={0:x}"],
                     "strategy.schedule"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(tmp_path, case):
    setup, expect = CASES[case]
    p = cli(tmp_path, *setup(tmp_path))
    assert p.returncode == 2, (p.returncode, p.stderr[-1500:])
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("fastdrop: error:")]
    assert len(lines) == 1 and expect in lines[0], p.stderr[-1500:]
    # rejected before training: neither the run directory Hydra made nor an empty results/ stays
    assert not (tmp_path / "run").exists() and not (tmp_path / "results").exists()


def test_divergence_writes_the_row_and_exits_nonzero(tmp_path):
    p = cli(tmp_path, "optim.lr=1e12", "optim.momentum=0")
    assert p.returncode == 3, p.stderr[-1500:]
    rows = [json.loads(f.read_text()) for f in (tmp_path / "results" / "runs").glob("*.json")]
    assert len(rows) == 1
    assert rows[0]["status"] == "diverged" and "epoch 1" in rows[0]["status_reason"]
    assert "Traceback" not in p.stderr


# -- cache: no room ------------------------------------------------------------------------------------
def _failing_allocate(fail):
    real = FeatureCache._allocate

    def allocate(self, backend):
        if backend in fail:
            if backend == "disk":
                raise OSError(28, "No space left on device")
            raise torch.OutOfMemoryError("simulated: out of memory")
        return real(self, backend)

    return allocate


def test_cache_falls_back_to_the_next_backend(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(FeatureCache, "_allocate", _failing_allocate({"device"}))
    c = FeatureCache(4, [(2, 2)], torch.float32, torch.device("cpu"), "device", tmp_path / "c")
    assert c.backend == "host"
    assert "does not fit on device" in caplog.text


def test_no_room_anywhere_stops_the_run_with_the_size(tmp_path, monkeypatch):
    monkeypatch.setattr(FeatureCache, "_allocate", _failing_allocate({"device", "host", "disk"}))
    cfg = shrink(compose_config(["strategy=dropping", "strategy.policy=schedule", "strategy.schedule={1:2}"]),
                 tmp_path, {"epochs": 3})
    t = Trainer(cfg, tmp_path / "run")
    with pytest.raises(CacheError, match=r"needs [\d.]+ (KiB|MiB)"):
        t.fit()
    row = json.loads(t.row_path.read_text())
    assert row["status"] == "failed" and "needs" in row["status_reason"]
    assert row["epochs_done"] == 1  # the epoch before the cut is kept in the row


def test_disk_too_small_is_detected_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(backends.shutil, "disk_usage", lambda p: type("U", (), {"free": 10})())
    with pytest.raises(CacheError, match="needs"):
        FeatureCache(1000, [(8, 8)], torch.float32, torch.device("cpu"), "disk", tmp_path / "c")


# -- cache: damage -------------------------------------------------------------------------------------
def _damage_truncate(d):
    f = d / "state0.bin"
    f.write_bytes(f.read_bytes()[:-16])


def _damage_flip(d):
    f = d / "state0.bin"
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0xFF
    f.write_bytes(bytes(b))


def _damage_meta(d):
    m = json.loads((d / "meta.json").read_text())
    m["dtype"] = "torch.float16"
    (d / "meta.json").write_text(json.dumps(m))


DISK_CUT = ["strategy=dropping", "strategy.policy=schedule", "strategy.schedule={1:2}", "strategy.cache.backend=disk"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The row of the run every damaged-and-resumed run below must end like: trained once for all cases."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    return Trainer(shrink(compose_config(DISK_CUT), tmp, {"epochs": 3}), tmp / "ref").fit()


@pytest.mark.parametrize("damage, words", [(None, "reusing"), (_damage_truncate, "truncated"),
                                           (_damage_flip, "checksum"), (_damage_meta, "expected")])
def test_disk_cache_damage_is_detected_and_rebuilt(tmp_path, caplog, damage, words, uninterrupted):
    over, ref = DISK_CUT, uninterrupted
    cfg = shrink(compose_config(over), tmp_path, {"epochs": 3})

    # Two epochs, checkpoint, then "killed": the disk cache of the cut stays behind.
    t = Trainer(cfg, tmp_path / "run")
    for e in (1, 2):
        t.history.append(t.train_epoch(e))
        t.save_checkpoint(e)
    cache_dir = tmp_path / "run" / "feature_cache" / "cut2"
    assert (cache_dir / "meta.json").exists()
    if damage:
        damage(cache_dir)
    del t

    resumed = shrink(compose_config(over + ["resume=true"]), tmp_path, {"epochs": 3})
    with caplog.at_level(logging.INFO):
        row = Trainer(resumed, tmp_path / "run").fit()
    assert words in caplog.text
    assert row["history"][-1]["train_loss"] == ref["history"][-1]["train_loss"]
    assert row["A"] == ref["A"]
