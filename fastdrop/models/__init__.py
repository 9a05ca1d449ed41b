"""Networks by name, from the model registry (`fastdrop.registry.MODELS`, filled by vgg.py and resnet.py).

`build_model` returns the chain the trainer uses; `build_torchvision` the module it was cut from (the
chain shares its layers), which the tests use to prove both compute the same function. An entry is a
builder `(num_classes, in_channels, image_size, width) -> nn.Module` registered with its `family` (the
report's table grouping), `module_type` and `to_chain` (how to cut such a module; default `as_chain`).
"""
from __future__ import annotations

from ..registry import MODELS
# Registration order is the report's order: VGGs (Table 1), then ResNets (Table 2).
from . import vgg  # noqa: F401,I001
from . import resnet  # noqa: F401
from .chain import Chain, SeqUnit, State, Unit, as_chain

NAMES = MODELS  # the registered names, in registration order (kept for older imports)


def build_torchvision(name: str, num_classes: int, in_channels: int, image_size: int, width: float = 1.0):
    return MODELS.get_or_fail(name)(num_classes, in_channels, image_size, width)


def chain_of(module) -> Chain:
    for name in MODELS:
        t = MODELS.attr(name, "module_type")
        if t is not None and isinstance(module, t):
            return MODELS.attr(name, "to_chain")(module)
    return as_chain(module)


def build_model(name: str, num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> Chain:
    to_chain = MODELS.attr(name, "to_chain", chain_of)
    return to_chain(build_torchvision(name, num_classes, in_channels, image_size, width))


__all__ = ["Chain", "SeqUnit", "State", "Unit", "as_chain", "build_model", "build_torchvision", "chain_of", "MODELS",
           "NAMES"]
