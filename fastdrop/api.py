"""Python entry point for a user's own network and data (the fine-tuning use case).

`fit(model, data, *overrides, name=...)` composes the same config as the CLI (so presets and keys behave
the same), then trains the given network on the given `ImageData` with the chosen strategy and returns
the result row. `model` is anything `fastdrop.models.chain_of` accepts: a torchvision ResNet or VGG
instance, a module with a `fastdrop_units()` method, an nn.Sequential of conv blocks, or a Chain. The
rows are named `name`, else `model.name=` from the overrides, else `<class>-<architecture hash>`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from .cli import CONF_DIR
from .config import register_configs
from .data import ImageData
from .models import chain_of
from .trainer import Trainer


def fit(model, data: ImageData, *overrides: str, run_dir: str | Path | None = None, name: str | None = None) -> dict:
    """Train `model` on `data` with Hydra-style overrides, e.g.
    fit(torchvision.models.resnet18(num_classes=10), data, "strategy=dropping", "epochs=20", name="my-resnet")."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=list(overrides))
    chain_of(model)  # refuse what cannot be cut before anything else runs
    if name is None and any(o.startswith("model.name=") for o in overrides):
        name = cfg.model.name
    run_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="fastdrop-"))
    return Trainer(cfg, run_dir, chain=model, data=data, name=name).fit()
