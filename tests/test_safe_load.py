"""A run directory from elsewhere cannot run code on resume (issue 22): checkpoints load with
weights_only=True, so a crafted pickle is refused with one line and what it would run never runs."""
import shutil

import pytest
import torch
from conftest import cli_in_process, compose_config, shrink, tiny_overrides

from fastdrop.files import CKPT
from fastdrop.run.checkpoint import config_fingerprint
from fastdrop.run.trainer import Trainer
from fastdrop.errors import ConfigError


class Payload:
    """Unpickled without weights_only, it runs open(marker, "w"): a file appears."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def crafted_run_dir(tmp_path, cfg):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"fingerprint": config_fingerprint(cfg), "epoch": 1, "payload": Payload(tmp_path / "ran")},
               run_dir / CKPT)
    return run_dir


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    cfg = shrink(compose_config(["resume=true"]), tmp_path)
    run_dir = crafted_run_dir(tmp_path, cfg)
    # the CLI: refused in Hydra's on_run_start, before the run directory is touched
    p = cli_in_process(["run", *tiny_overrides(tmp_path), "resume=true", f"hydra.run.dir={run_dir}"], tmp_path)
    assert p.returncode == 2, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastdrop: error: checkpoint"), p.stderr
    assert "objects other than tensors" in lines[0] and "Traceback" not in p.stderr
    # the Python API reads it the same way
    with pytest.raises(ConfigError, match="objects other than tensors"):
        Trainer(cfg, run_dir).fit()
    assert not (tmp_path / "ran").exists()

    # the file really is a payload: the unsafe load this replaced would have run it
    copy = tmp_path / "copy.pt"
    shutil.copy(run_dir / CKPT, copy)
    torch.load(copy, weights_only=False)
    assert (tmp_path / "ran").exists()
