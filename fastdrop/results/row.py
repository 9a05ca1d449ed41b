"""The one flat result row a run writes to `<results_dir>/runs/<run_id>.json` and fastdrop.report reads
back: identity, totals, per-unit forward work and the per-epoch history (timm's summary row, one schema for
writer and reader). `Row` is that schema; `SCHEMA_VERSION` counts its changes. Fields the report needs
have no default (every row ever written has them); every later field has one, so an older row (version 1:
before the version field) still loads, with its missing fields at their defaults."""
from __future__ import annotations

import os
import socket
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Optional

import torch
import torchvision
from omegaconf import OmegaConf

from ..registry import MODELS
from .write import git_commit

SCHEMA_VERSION = 2  # 1: rows before schema_version was written; 2: this dataclass

_STR, _INT, _NUM = (str,), (int,), (int, float)


def _need(types: Optional[tuple]) -> Any:
    """A required field; `types` are what the reader accepts (None: any value, bool never counts as int)."""
    return field(metadata={"types": types})


@dataclass
class Row:
    run_id: str = _need(_STR)
    status: str = _need(_STR)  # completed | diverged | failed
    model: str = _need(_STR)
    data: str = _need(_STR)
    strategy: str = _need(_STR)
    seed: int = _need(_INT)
    epochs: int = _need(_INT)
    width: Optional[float] = _need(_NUM + (type(None),))  # None for a user's own (custom) model
    batch_size: int = _need(_INT)
    precision: str = _need(_STR)
    device: str = _need(_STR)
    T_min: Optional[float] = _need(None)  # training time T in minutes (a failed run may have none)
    A: Optional[float] = _need(None)  # final test accuracy, %
    history: list = _need((list,))  # one record per epoch (fastdrop.run.trainer.Trainer.train_epoch)
    schema_version: int = 1
    status_reason: str = ""
    model_family: Optional[str] = None
    stem: Optional[str] = None
    weights: Optional[str] = None
    weights_file: Optional[str] = None
    weights_sha256: Optional[str] = None
    classifier: Optional[str] = None
    policy: Optional[str] = None
    experiment: Optional[str] = None
    tag: str = ""
    epochs_done: Optional[int] = None
    world_size: int = 1
    per_rank_batch_size: Optional[int] = None
    dist_backend: Optional[str] = None
    warmup: Optional[int] = None
    device_name: Optional[str] = None
    host: Optional[str] = None
    torch_version: Optional[str] = None
    torchvision_version: Optional[str] = None
    git_commit: Optional[str] = None
    train_time_s: Optional[float] = None
    cache_time_s: Optional[float] = None
    eval_time_s: Optional[float] = None
    train_images: Optional[int] = None
    test_images: Optional[int] = None
    augment: Optional[bool] = None
    classes: Optional[list] = None
    normalisation: Optional[dict] = None
    train_class_counts: Optional[list] = None
    test_class_counts: Optional[list] = None
    warnings: list = field(default_factory=list)
    cache_note: Optional[str] = None
    unit_names: Optional[list] = None
    unit_macs_per_sample: Optional[list] = None
    fwd_macs_full_per_sample: Optional[int] = None
    params_total: Optional[int] = None
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    run_dir: Optional[str] = None
    config: Optional[dict] = None


REQUIRED = {f.name: f.metadata["types"] for f in fields(Row) if f.default is MISSING and f.default_factory is MISSING}
FIELDS = [f.name for f in fields(Row)]


def problem(row) -> Optional[str]:
    """Why a stored row cannot be read as a `Row` (missing required keys, wrong types), or None."""
    if not isinstance(row, dict):
        return "the file does not hold a JSON object"
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        return "missing keys: " + ", ".join(missing)
    for k, types in REQUIRED.items():
        if types is not None and (not isinstance(row[k], types) or isinstance(row[k], bool)):
            return f"key {k!r} has the wrong type ({type(row[k]).__name__})"
    if not isinstance(row.get("schema_version", 1), int) or row.get("schema_version", 1) > SCHEMA_VERSION:
        return f"schema_version {row.get('schema_version')!r} is newer than this fastdrop reads ({SCHEMA_VERSION})"
    return None


def load(row: dict) -> dict:
    """A stored row (checked with `problem` first) as a dict of every current field: the fields an older
    row lacks take their defaults; keys the schema does not know are dropped."""
    known = {k: v for k, v in row.items() if k in FIELDS}
    return asdict(Row(**known))


def build_row(t, status: str, reason: str) -> dict:
    """The flat result row of a trainer `t` (a `fastdrop.run.trainer.Trainer`) after its last epoch. Building
    the `Row` fails on a key the schema lacks, so writer and reader cannot drift apart."""
    cfg, h = t.cfg, t.history
    dev = t.device
    return asdict(Row(
        schema_version=SCHEMA_VERSION,
        run_id=t.run_id, status=status, status_reason=reason,
        model=t.model_name, model_family=MODELS.attr(t.model_name, "family"),
        width=None if t.custom else cfg.model.width, **t.model_info,
        data=t.data.name, strategy=cfg.strategy.name,
        policy=t.strategy.policy_name,
        experiment=t.experiment, tag=cfg.tag,
        seed=cfg.seed, epochs=cfg.epochs, epochs_done=len(h), batch_size=cfg.batch_size,
        world_size=t.world.size, per_rank_batch_size=t.ctx.batch_size, dist_backend=t.world.backend or None,
        precision=cfg.precision, warmup=cfg.strategy.warmup,
        device=str(dev), device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else
        f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)",
        host=socket.gethostname(), torch_version=torch.__version__,
        torchvision_version=torchvision.__version__, git_commit=git_commit(),
        T_min=t.T_s / 60.0, train_time_s=t.T_s,
        cache_time_s=sum(r["cache_time_s"] for r in h),
        eval_time_s=sum(r["eval_time_s"] for r in h),
        A=h[-1]["test_acc"] if h else None,
        train_images=len(t.data.train) * t.world.size, test_images=t.n_test,  # all ranks together
        augment=cfg.data.augment, classes=list(t.data.classes) if t.data.classes else None,
        normalisation={"mean": list(t.data.mean), "std": list(t.data.std)},
        train_class_counts=t.class_counts["train"], test_class_counts=t.class_counts["test"],
        warnings=list(t.warnings),
        cache_note=t.strategy.cache_note(cfg.strategy, cfg.data.augment),
        unit_names=t.chain.names, unit_macs_per_sample=t.ctx.unit_macs,
        fwd_macs_full_per_sample=int(sum(t.ctx.unit_macs)),
        params_total=sum(p.numel() for p in t.chain.parameters()),
        started_at=t.started_at,
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        run_dir=str(t.run_dir),
        config=OmegaConf.to_container(cfg, resolve=True),
        history=h,
    ))
