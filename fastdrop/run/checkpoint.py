"""Checkpoints in the run directory and the `checkpoint` policy that says which of them stay.

`checkpoint.pt` is rewritten atomically after every epoch, so `resume=true` continues a killed run
exactly. What stays once the run has ended:
- `last` (default): the checkpoint is removed when the run completes (an interrupted, failed or
  diverged run keeps it, to resume or inspect), and the final weights stay as `weights.pt` (the chain's
  state_dict alone, without optimiser or RNG state), so the run directory can start a fine-tuning run;
- `keep`: it stays (the final weights);
- `every`: it stays, and so does one `checkpoint-epoch<N>.pt` per epoch (hard links where possible);
- `none`: no checkpoint is written, so the run cannot be resumed.
A checkpoint only resumes a run whose config has the same fingerprint (everything but run-control keys).
Checkpoints are read with `weights_only=True` (tensors and plain values only), so a run directory from
elsewhere cannot run code on resume.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CKPT = "checkpoint.pt"
WEIGHTS = "weights.pt"  # a completed run's final weights under checkpoint=last
RUN_CONTROL_KEYS = ("resume", "progress", "results_dir", "device", "checkpoint")


def config_fingerprint(cfg: DictConfig) -> str:
    """What must match for a checkpoint to be resumed: everything but the run-control keys."""
    d = OmegaConf.to_container(cfg, resolve=True)
    d.pop("hydra", None)
    for k in RUN_CONTROL_KEYS:
        d.pop(k, None)
    d["data"].pop("root", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def load(path: Path, map_location="cpu", mmap: bool = False) -> dict:
    """A checkpoint's contents; torch's safe unpickler refuses anything but tensors and plain values."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)


def unreadable(path: Path, e: Exception) -> str:
    """The one line for a checkpoint `load` raised `e` on."""
    if "Weights only load failed" in str(e):
        return (f"checkpoint {path} holds objects other than tensors and plain values, which fastdrop does not "
                "load (a file from elsewhere could run code); start the run again")
    return f"checkpoint {path} is unreadable ({type(e).__name__}); start the run again"


def read_fingerprint(path: Path) -> str:
    """The fingerprint stored in a checkpoint (memory-mapped: the weights are not read)."""
    return load(path, mmap=True)["fingerprint"]


def after_save(run_dir: Path, policy: str, epoch: int) -> None:
    """Called once `checkpoint.pt` of `epoch` is on disk: keep a copy per epoch under `every`."""
    if policy != "every":
        return
    src, dst = run_dir / CKPT, run_dir / f"checkpoint-epoch{epoch}.pt"
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)  # the next save replaces checkpoint.pt by a new file, so the link keeps this one
    except OSError:
        shutil.copy2(src, dst)


def at_end(run_dir: Path, policy: str, status: str, weights: dict | None = None) -> None:
    """Apply the policy once the run has ended with `status`; `weights` (the final state_dict) replace
    the checkpoint of a completed run under `last`."""
    if policy == "last" and status == "completed":
        if weights is not None:
            from .results import atomic_torch_save

            atomic_torch_save(weights, run_dir / WEIGHTS)
        (run_dir / CKPT).unlink(missing_ok=True)
