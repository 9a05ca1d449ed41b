"""Model registry: name -> (torchvision-derived module, its chain of units).

`build_model` returns the chain the trainer uses; `build_torchvision` the module it was cut from (the
chain shares its layers), which the tests use to prove both compute the same function. `build` adds
what a run configures: the stem and the starting weights (models/weights.py). A user's own network is
cut by `chain_of` (models/custom.py).
"""
from __future__ import annotations

from .chain import Chain, SeqUnit, State, Unit, as_chain
from .custom import ACCEPTED, chain_of, default_name
from .resnet import LAYOUT as _RESNETS, build_resnet, resnet_chain
from .vgg import DEPTH_TO_CFG as _VGGS, build_vgg, vgg_chain
from .weights import WeightsError, apply_weights, resolve_stem

NAMES = ["vgg11", "vgg16", "vgg19", "resnet18", "resnet50", "resnet101", "resnet152"]


def build_torchvision(name: str, num_classes: int, in_channels: int, image_size: int, width: float = 1.0,
                      small: bool | None = None):
    if name in _VGGS:
        return build_vgg(name, num_classes, in_channels, image_size, width, small)
    if name in _RESNETS:
        return build_resnet(name, num_classes, in_channels, image_size, width, small)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(NAMES)}")


def build_model(name: str, num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> Chain:
    return chain_of(build_torchvision(name, num_classes, in_channels, image_size, width))


def build(model_cfg, num_classes: int, in_channels: int, image_size: int) -> tuple[Chain, dict]:
    """The configured network (`model.name`, `width`, `stem`, `weights`) and the row's record of it."""
    small = resolve_stem(model_cfg.stem, model_cfg.weights, image_size)
    module = build_torchvision(model_cfg.name, num_classes, in_channels, image_size, model_cfg.width, small)
    chain = chain_of(module)
    info = apply_weights(module, chain, model_cfg.weights, model_cfg.name, model_cfg.width, in_channels,
                         model_cfg.new_classifier)
    return chain, {"stem": "small" if small else "imagenet", **info}


__all__ = ["ACCEPTED", "Chain", "SeqUnit", "State", "Unit", "WeightsError", "apply_weights", "as_chain", "build",
           "build_model", "build_torchvision", "chain_of", "default_name", "NAMES"]
