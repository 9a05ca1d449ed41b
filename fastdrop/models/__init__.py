"""Networks by name, from the model registry (`fastdrop.registry.MODELS`, filled by vgg.py and resnet.py).

`build_model` returns the chain the trainer uses; `build_torchvision` the module it was cut from (the
chain shares its layers), which the tests use to prove both compute the same function. `build` adds
what a run configures: the stem and the starting weights (models/weights.py). A user's own network is
cut by `chain_of` (models/custom.py).

An entry is a builder `(num_classes, in_channels, image_size, width, small) -> nn.Module` registered
with its `family` (the report's table grouping), `module_type` and `to_chain` (how to cut such a module)
and optionally `torchvision` (the torchvision model whose weights it takes, default its own name).
"""
from __future__ import annotations

import torch

from ..registry import MODELS
# Registration order is the report's order: VGGs (Table 1), then ResNets (Table 2).
from . import vgg  # noqa: F401,I001
from . import resnet  # noqa: F401
from .chain import Chain, SeqUnit, State, Unit, as_chain
from .custom import ACCEPTED, chain_of, default_name
from .weights import WeightsError, apply_weights, is_torchvision_name, read_path, resolve_stem, shapes_fit

NAMES = MODELS  # the registered names, in registration order (kept for older imports)


def build_torchvision(name: str, num_classes: int, in_channels: int, image_size: int, width: float = 1.0,
                      small: bool | None = None):
    return MODELS.get_or_fail(name)(num_classes, in_channels, image_size, width, small)


def build_model(name: str, num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> Chain:
    to_chain = MODELS.attr(name, "to_chain", chain_of)
    return to_chain(build_torchvision(name, num_classes, in_channels, image_size, width))


def build(model_cfg, num_classes: int, in_channels: int, image_size: int) -> tuple[Chain, dict]:
    """The configured network (`model.name`, `width`, `stem`, `weights`) and the row's record of it."""
    small = choose_stem(model_cfg, num_classes, in_channels, image_size)
    module = build_torchvision(model_cfg.name, num_classes, in_channels, image_size, model_cfg.width, small)
    chain = MODELS.attr(model_cfg.name, "to_chain", chain_of)(module)
    info = apply_weights(module, chain, model_cfg.weights, model_cfg.name, model_cfg.width, in_channels,
                         model_cfg.new_classifier)
    return chain, {"stem": "small" if small else "imagenet", **info}


def choose_stem(model_cfg, num_classes: int, in_channels: int, image_size: int) -> bool:
    """True for the small stem. `auto` with a weights file or run: the stem whose layers (first conv, and
    for VGG the classifier input) have the file's shapes, tried on shape-only (meta) builds; where neither
    fits, the image-size default, and loading then names the real mismatch."""
    small = resolve_stem(model_cfg.stem, model_cfg.weights, image_size)
    spec = model_cfg.weights
    if model_cfg.stem != "auto" or not spec or is_torchvision_name(spec):
        return small
    sd, _ = read_path(spec)
    for candidate in (small, not small):
        with torch.device("meta"):
            module = build_torchvision(model_cfg.name, num_classes, in_channels, image_size, model_cfg.width, candidate)
            chain = MODELS.attr(model_cfg.name, "to_chain", chain_of)(module)
        if shapes_fit(module, chain, sd):
            return candidate
    return small


__all__ = ["ACCEPTED", "Chain", "SeqUnit", "State", "Unit", "WeightsError", "apply_weights", "as_chain", "build",
           "build_model", "build_torchvision", "chain_of", "default_name", "MODELS", "NAMES"]
