"""Python entry point for a user's own network and data (the fine-tuning use case).

`fit(model, data, *overrides, name=...)` composes the same config as the CLI (so presets and keys behave
the same), then trains the given network on the given data with the chosen strategy and returns the
result row. `model` is anything `fastdrop.models.chain_of` accepts: a torchvision ResNet or VGG
instance, a module with a `fastdrop_units()` method, an nn.Sequential of conv blocks, a Chain, or any
other classifier torch.fx can trace (torchvision, timm), cut automatically. `data` is an `ImageData` or
a map-style torch Dataset of (image, label), e.g. torchvision's ImageFolder with its transform
(fastdrop.data.dataset_input: cached once when the transform is deterministic, streamed otherwise). The
rows are named `name`, else `model.name=` from the overrides, else `<class>-<architecture hash>`.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from .config import compose_config
from .config.validate import validate
from .data import ImageData
from .data.dataset_input import RANDOM_CACHE_NOTE, from_datasets
from .models import chain_of
from .run.trainer import Trainer


def fit(model, data, *overrides: str, run_dir: str | Path | None = None, name: str | None = None, test=None,
        deterministic: bool | None = None, stats: tuple | None = None) -> dict:
    """Train `model` on `data` with Hydra-style overrides and return the result row, e.g.
    fit(torchvision.models.resnet18(num_classes=10), data, "strategy=dropping", "epochs=20", name="my-resnet").

    A Dataset `data` may come with a `test` Dataset (else a class-balanced tenth of it is held out),
    `deterministic` (None: decided from its transforms, see fastdrop.data.dataset_input) and `stats`
    ((mean, std) per channel, in [0, 1] units; default: the training split's own).
    Everything is checked before anything is written: the overrides (as on the command line), the data
    (`ImageData.check`, or the Dataset's items) and that the model takes the images and gives num_classes
    outputs. The row goes
    to `<results_dir>/runs/` (override `results_dir=...`; default `results`, as for the CLI); checkpoint
    and disk cache go to `run_dir`, by default a temporary directory removed when fit returns or fails."""
    cfg = compose_config(overrides)
    validate(cfg)
    notes: list[str] = []
    if not isinstance(data, ImageData):
        d = cfg.data
        data, notes = from_datasets(data, test, deterministic=deterministic, stats=stats, train_subset=d.train_subset,
                                    test_subset=d.test_subset, subset_seed=d.subset_seed, workers=d.workers)
        if cfg.strategy.name != "dropping":
            notes = [n for n in notes if n != RANDOM_CACHE_NOTE]
    data.check()
    _check_outputs(chain_of(model), data)  # also refuses what cannot be cut
    if name is None and any(o.startswith("model.name=") for o in overrides):
        name = cfg.model.name
    temp = run_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="fastdrop-")) if temp else Path(run_dir)
    try:
        trainer = Trainer(cfg, run_dir, chain=model, data=data, name=name, validated=True)
        for note in notes:
            trainer.warn(note)
        return trainer.fit()
    finally:
        if temp:
            shutil.rmtree(run_dir, ignore_errors=True)


def _check_outputs(chain, data: ImageData) -> None:
    """One test image through the model (eval mode, no grad): it must give [1, num_classes] logits."""
    p = next(chain.parameters(), None)
    x = data.normalize(data.test.fetch(slice(0, 1)).to(p.device if p is not None else "cpu"),
                       p.dtype if p is not None and p.is_floating_point() else torch.float32)
    was_training = chain.training
    chain.eval()
    try:
        with torch.no_grad():
            out = chain(x)
    except RuntimeError as e:
        raise ValueError(f"the model cannot take the data's images [C, H, W] = {list(x.shape[1:])}: "
                         f"{str(e).splitlines()[0]}") from None
    finally:
        chain.train(was_training)
    if out.dim() != 2 or out.shape[1] != data.num_classes:
        raise ValueError(f"the model gives outputs of shape {list(out.shape)} for one image, but the data has "
                         f"num_classes={data.num_classes}: its last layer must have {data.num_classes} outputs")
