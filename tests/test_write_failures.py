"""A write that fails for lack of space (issue 22): one line naming the file, the bytes needed and the
free space, exit 4, no traceback; the previous checkpoint stays whole, and resuming once there is room
ends with the uninterrupted run's weights."""
import errno
import json
import os
from pathlib import Path

import pytest
import torch
from conftest import cli_in_process, compose_config

from fastdrop import files
from fastdrop.files import CKPT
from fastdrop.files import WriteError, atomic_write_text
from fastdrop.run.trainer import Trainer

BASE = ["progress=false", "model.width=0.125", "data.train_subset=256", "data.test_subset=64", "batch_size=64",
        "epochs=3", "strategy=dropping", "strategy.policy=schedule", "strategy.schedule={1:2}",
        "strategy.cache.backend=disk"]


def cli(tmp_path, *args):
    # In this process (conftest.cli_in_process): same threads, so bit-identical to the reference run.
    return cli_in_process(["run", *BASE, f"results_dir={tmp_path}/results", *args], tmp_path)


class FullDisk:
    """A file whose writes fail with ENOSPC after 4 KiB, as on a disk that fills up."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def write(self, b):
        self.n += len(b)
        if self.n > 4096:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.f.write(b)

    def flush(self):
        self.f.flush()


def fill_the_disk_at(monkeypatch, n: int) -> None:
    """The n-th torch.save from now on (the checkpoint of epoch n) writes to a disk that fills up."""
    real_save, calls = files.torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        return real_save(obj, FullDisk(f) if len(calls) == n else f, *args, **kwargs)

    monkeypatch.setattr(files.torch, "save", save)


@pytest.mark.slow
def test_a_full_disk_while_checkpointing_stops_cleanly_and_resumes(tmp_path, monkeypatch):
    ref = Trainer(compose_config([*BASE, f"results_dir={tmp_path}/ref-results", "checkpoint=keep"]), tmp_path / "ref")
    ref.fit()

    run_dir = tmp_path / "run"
    fill_the_disk_at(monkeypatch, 2)
    p = cli(tmp_path, f"hydra.run.dir={run_dir}")
    monkeypatch.undo()  # room again
    assert p.returncode == 4, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"fastdrop: error: cannot write {run_dir / CKPT}: No space left on device (it needs "
                               "about "), lines[0]
    assert " free in " in lines[0]
    assert torch.load(run_dir / CKPT, weights_only=True)["epoch"] == 1  # the previous checkpoint, whole
    assert not list(run_dir.glob(".checkpoint.pt.*"))  # no temp file left behind
    row = json.loads(next((tmp_path / "results" / "runs").glob("*.json")).read_text())
    assert row["status"] == "failed" and "No space left on device" in row["status_reason"]

    p = cli(tmp_path, f"hydra.run.dir={run_dir}", "resume=true", "checkpoint=keep")
    assert p.returncode == 0, p.stderr[-2000:]
    got = torch.load(run_dir / CKPT, weights_only=True)["model"]
    want = torch.load(ref.run_dir / CKPT, weights_only=True)["model"]
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_write_errors_name_the_file_and_the_free_space(tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full)
    with pytest.raises(WriteError) as e:
        atomic_write_text(tmp_path / "row.json", "x" * 3000)
    assert str(e.value).startswith(f"cannot write {tmp_path / 'row.json'}: No space left on device (it needs "
                                   "about 2.9 KiB, ")
    assert not list(tmp_path.iterdir())
    monkeypatch.undo()
    (tmp_path / "ro").mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anyway
        with pytest.raises(WriteError, match="Permission denied"):
            atomic_write_text(tmp_path / "ro" / "row.json", "x")


def test_a_row_that_cannot_be_written_fails_the_run_with_the_line(tmp_path, monkeypatch):
    cfg = compose_config([*BASE[:6], "epochs=1", f"results_dir={tmp_path}/results", "device=cpu"])
    t = Trainer(cfg, tmp_path / "run")

    def no_room(results_dir, row):
        raise files.write_error(OSError(errno.ENOSPC, "No space left on device"), Path(results_dir) / "x.json")

    monkeypatch.setattr("fastdrop.run.trainer.write_row", no_room)
    with pytest.raises(WriteError, match="No space left"):
        t.fit()
