"""Python entry point for a user's own network and data (the fine-tuning use case).

`fit(chain, data, *overrides)` composes the same config as the CLI (so presets and keys behave the same),
then trains the given chain on the given `ImageData` with the chosen strategy and returns the result row.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from .cli import CONF_DIR
from .config import register_configs
from .data import ImageData
from .models import Chain, as_chain
from .trainer import Trainer


def fit(model, data: ImageData, *overrides: str, run_dir: str | Path | None = None) -> dict:
    """Train `model` (a Chain, or an nn.Sequential of conv blocks) on `data` with Hydra-style overrides,
    e.g. fit(seq, data, "strategy=dropping", "epochs=20")."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=list(overrides))
    chain: Chain = as_chain(model)
    run_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="fastdrop-"))
    return Trainer(cfg, run_dir, chain=chain, data=data).fit()
