"""Model registry: name -> (torchvision-derived module, its chain of units).

`build_model` returns the chain the trainer uses; `build_torchvision` the module it was cut from (the
chain shares its layers), which the tests use to prove both compute the same function.
"""
from __future__ import annotations

from .chain import Chain, SeqUnit, State, Unit, as_chain
from .resnet import LAYOUT as _RESNETS, build_resnet, resnet_chain
from .vgg import DEPTH_TO_CFG as _VGGS, build_vgg, vgg_chain

NAMES = ["vgg11", "vgg16", "vgg19", "resnet18", "resnet50", "resnet101", "resnet152"]


def build_torchvision(name: str, num_classes: int, in_channels: int, image_size: int, width: float = 1.0):
    if name in _VGGS:
        return build_vgg(name, num_classes, in_channels, image_size, width)
    if name in _RESNETS:
        return build_resnet(name, num_classes, in_channels, image_size, width)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(NAMES)}")


def chain_of(module) -> Chain:
    from torchvision.models.resnet import ResNet
    from torchvision.models.vgg import VGG

    if isinstance(module, VGG):
        return vgg_chain(module)
    if isinstance(module, ResNet):
        return resnet_chain(module)
    return as_chain(module)


def build_model(name: str, num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> Chain:
    return chain_of(build_torchvision(name, num_classes, in_channels, image_size, width))


__all__ = ["Chain", "SeqUnit", "State", "Unit", "as_chain", "build_model", "build_torchvision", "chain_of", "NAMES"]
