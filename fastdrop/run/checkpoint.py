"""Checkpoints in the run directory, the one check a resume must pass, and the retention (the
`checkpoint` key) that says which checkpoints stay.

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
import shlex
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from ..files import CKPT, HYDRA_OVERRIDES, WEIGHTS, atomic_torch_save, epoch_checkpoint

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


def resume_command(overrides: list[str], run_dir: str | Path) -> str:
    """The exact command that continues the run in `run_dir`."""
    keep = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("resume", "hydra.run.dir")]
    return shlex.join(["fastdrop", "run", *keep, "resume=true", f"hydra.run.dir={Path(run_dir).resolve()}"])


def check_resume(cfg: DictConfig, run_dir: Path, world_size: int | None = None, map_location="cpu",
                 full: bool = False) -> dict:
    """The one check a `resume=true` must pass, raising ConfigError: the checkpoint exists, is readable,
    was written with the same overrides and (given `world_size`) by as many processes. Returns its
    contents: only memory-mapped (the fingerprint read, the weights not) unless `full`. The CLI calls it
    before anything in `run_dir` is touched, the trainer when it loads the state."""
    path = Path(run_dir) / CKPT
    if not path.exists():
        raise ConfigError(f"resume=true but {path} does not exist (a completed run keeps only {WEIGHTS} unless "
                          "checkpoint=keep); pass hydra.run.dir=<the directory of the interrupted run>")
    try:
        state = load(path, map_location=map_location, mmap=not full)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one line
        raise ConfigError(unreadable(path, e)) from None
    if state["fingerprint"] != config_fingerprint(cfg):
        try:
            original = OmegaConf.load(Path(run_dir) / HYDRA_OVERRIDES)
            hint = f"resume with the original overrides: {resume_command(list(original), run_dir)}"
        except OSError:
            hint = "resume with the same overrides as the original run"
        raise ConfigError(f"checkpoint {path} was written with different overrides; {hint}")
    if world_size is not None and state.get("world_size", 1) != world_size:
        raise ConfigError(f"checkpoint {path} was written by {state.get('world_size', 1)} process(es), this run "
                          f"has {world_size}: resume with the same number (the training rows are sharded "
                          "per rank, so a different number is not supported)")
    return state


def after_save(run_dir: Path, retention: str, epoch: int) -> None:
    """Called once `checkpoint.pt` of `epoch` is on disk: keep a copy per epoch under `every`."""
    if retention != "every":
        return
    src, dst = run_dir / CKPT, run_dir / epoch_checkpoint(epoch)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)  # the next save replaces checkpoint.pt by a new file, so the link keeps this one
    except OSError:
        shutil.copy2(src, dst)


def at_end(run_dir: Path, retention: str, status: str, weights: dict | None = None) -> None:
    """Apply the retention once the run has ended with `status`; `weights` (the final state_dict) replace
    the checkpoint of a completed run under `last`."""
    if retention == "last" and status == "completed":
        if weights is not None:
            atomic_torch_save(weights, run_dir / WEIGHTS)
        (run_dir / CKPT).unlink(missing_ok=True)


def save(t, epoch: int) -> None:
    """Trainer `t`'s state after `epoch`, atomically. Rank 0 writes it (the ranks hold the same model);
    every rank's RNG state goes in."""
    import torch

    if t.cfg.checkpoint == "none":
        return
    rng = {"torch": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state_all() if t.device.type == "cuda" else None}
    rng_ranks = t.world.gather(rng)
    if not t.world.is_main:
        t.world.barrier()
        return
    state = {
        "fingerprint": config_fingerprint(t.cfg), "epoch": epoch, "run_id": t.run_id,
        "started_at": t.started_at, "T_s": t.T_s, "history": t.history, "warnings": t.warnings,
        "model": t.chain.state_dict(), "optimizer": t.optimizer.state_dict(),
        "strategy": t.strategy.state_dict(), "world_size": t.world.size, "rng": rng_ranks[0],
        "rng_ranks": rng_ranks,
    }
    atomic_torch_save(state, t.run_dir / CKPT)
    after_save(t.run_dir, t.cfg.checkpoint, epoch)
    t.world.barrier()  # no rank goes on (or is killed) before the checkpoint is whole


def restore(t) -> int:
    """Load trainer `t`'s state from its run directory (after `check_resume`); returns the last epoch done."""
    import torch

    state = check_resume(t.cfg, t.run_dir, t.world.size, map_location=t.device, full=True)
    t.chain.load_state_dict(state["model"])
    t.strategy.load_state_dict(state["strategy"])
    t.optimizer.load_state_dict(state["optimizer"])
    rng = state.get("rng_ranks", [state["rng"]])[t.world.rank]
    torch.set_rng_state(rng["torch"].cpu())
    if rng["cuda"] is not None and t.device.type == "cuda":
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
    t.history, t.T_s, t.run_id = state["history"], state["T_s"], state["run_id"]
    t.started_at = state["started_at"]
    t.warnings = list(dict.fromkeys(state.get("warnings", []) + t.warnings))
    return state["epoch"]
