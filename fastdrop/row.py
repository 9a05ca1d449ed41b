"""The one flat result row a run writes to `<results_dir>/runs/<run_id>.json` (read back by fastdrop.report):
identity, totals, per-unit forward work and the per-epoch history."""
from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

import torch
import torchvision
from omegaconf import OmegaConf

from .results import git_commit


def build_row(t, status: str, reason: str) -> dict:
    """The flat result row of a trainer `t` (a `fastdrop.trainer.Trainer`) after its last epoch."""
    cfg, h = t.cfg, t.history
    dev = t.device
    return {
        "run_id": t.run_id, "status": status, "status_reason": reason,
        "model": t.model_name, "width": None if t.custom else cfg.model.width, **t.model_info,
        "data": t.data.name, "strategy": cfg.strategy.name,
        "policy": cfg.strategy.policy if cfg.strategy.name != "sgd" else "none",
        "experiment": t.experiment, "tag": cfg.tag,
        "seed": cfg.seed, "epochs": cfg.epochs, "epochs_done": len(h), "batch_size": cfg.batch_size,
        "world_size": t.world.size, "per_rank_batch_size": t.ctx.batch_size, "dist_backend": t.world.backend or None,
        "precision": cfg.precision, "warmup": cfg.strategy.warmup,
        "device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else
        f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)",
        "host": socket.gethostname(), "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__, "git_commit": git_commit(),
        "T_min": t.T_s / 60.0, "train_time_s": t.T_s,
        "cache_time_s": sum(r["cache_time_s"] for r in h),
        "eval_time_s": sum(r["eval_time_s"] for r in h),
        "A": h[-1]["test_acc"] if h else None,
        "train_images": len(t.data.train) * t.world.size, "test_images": t.n_test,  # all ranks together
        "augment": cfg.data.augment, "classes": list(t.data.classes) if t.data.classes else None,
        "normalisation": {"mean": list(t.data.mean), "std": list(t.data.std)},
        "train_class_counts": t.class_counts["train"], "test_class_counts": t.class_counts["test"],
        "warnings": list(t.warnings),
        "cache_note": _cache_note(cfg),
        "unit_names": t.chain.names, "unit_macs_per_sample": t.ctx.unit_macs,
        "fwd_macs_full_per_sample": int(sum(t.ctx.unit_macs)),
        "params_total": sum(p.numel() for p in t.chain.parameters()),
        "started_at": t.started_at,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(t.run_dir),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "history": h,
    }


def _cache_note(cfg) -> str:
    if cfg.strategy.name != "dropping" or not cfg.data.augment:
        return ""
    k = cfg.strategy.cache.views
    if k == 1:
        return "head trained on cached un-augmented tail outputs (augmentation stops at the first drop)"
    return f"head trained on {k} cached views per image (plain, flip, {k - 2} random crops)"
