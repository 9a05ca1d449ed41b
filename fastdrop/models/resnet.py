"""ResNet-18/50/101/152 from torchvision's `ResNet`, `BasicBlock` and `Bottleneck`, one unit per conv.

A block is split at each of its convolutions (paper Fig. 4): the entry unit runs conv1 (+BN, ReLU) and
computes the skip tensor (the identity or torchvision's downsample, whose 1x1 conv belongs to this unit
and is scored with it); middle units carry the skip along; the exit unit adds it back. Between entry and
exit the state is (branch activation, skip). Small inputs (<= 64 px) get the usual CIFAR stem: 3x3
stride-1 first conv and no max-pool. `width` scales every stage's channels (64/128/256/512 x width).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet, conv1x1

from ..registry import MODELS
from .chain import Chain, SeqUnit, State, Unit

STAGE_PLANES = (64, 128, 256, 512)  # torchvision's stage widths at width 1.0


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def _stage(block, inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """One stage as torchvision lays it out (its public block classes; downsample when the shape changes)."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(conv1x1(inplanes, planes * block.expansion, stride),
                                   nn.BatchNorm2d(planes * block.expansion))
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class BlockEntry(Unit):
    def __init__(self, conv, bn, relu, downsample):
        super().__init__()
        self.conv, self.bn, self.relu, self.downsample = conv, bn, relu, downsample

    def forward(self, state: State) -> State:
        (x,) = state
        skip = x if self.downsample is None else self.downsample(x)
        return (self.relu(self.bn(self.conv(x))), skip)


class BlockMiddle(Unit):
    def __init__(self, conv, bn, relu):
        super().__init__()
        self.conv, self.bn, self.relu = conv, bn, relu

    def forward(self, state: State) -> State:
        h, skip = state
        return (self.relu(self.bn(self.conv(h))), skip)


class BlockExit(Unit):
    def __init__(self, conv, bn, relu):
        super().__init__()
        self.conv, self.bn, self.relu = conv, bn, relu

    def forward(self, state: State) -> State:
        h, skip = state
        out = self.bn(self.conv(h))
        out += skip
        return (self.relu(out),)


def build_resnet(block, layers: list[int], num_classes: int, in_channels: int, image_size: int,
                 width: float = 1.0, small: bool | None = None) -> ResNet:
    """torchvision's `ResNet` with every stage's width scaled: the shell is built on the meta device (no
    memory, no time) and given real stem, stages and fc built from torchvision's public blocks, then
    initialised as torchvision's __init__ does. At width 1.0 the parameter names and shapes are
    torchvision's. `small`: the CIFAR stem (default: for images <= 64 px); False keeps torchvision's 7x7 +
    max-pool."""
    with torch.device("meta"):
        model = ResNet(block, layers, num_classes=num_classes)
    c = _scaled(64, width)
    if image_size <= 64 if small is None else small:  # CIFAR stem
        model.conv1 = nn.Conv2d(in_channels, c, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    else:
        model.conv1 = nn.Conv2d(in_channels, c, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(c)
    inplanes = c
    for i, (planes, n) in enumerate(zip(STAGE_PLANES, layers)):
        planes = _scaled(planes, width)
        setattr(model, f"layer{i + 1}", _stage(block, inplanes, planes, n, 1 if i == 0 else 2))
        inplanes = planes * block.expansion
    model.fc = nn.Linear(inplanes, num_classes)
    for m in model.modules():  # torchvision ResNet.__init__'s initialisation (zero_init_residual=False)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return model


def resnet_chain(model: ResNet) -> Chain:
    units = [SeqUnit(model.conv1, model.bn1, model.relu, model.maxpool)]
    names = ["stem"]
    for s, stage in enumerate([model.layer1, model.layer2, model.layer3, model.layer4], start=1):
        for b, blk in enumerate(stage):
            convs = [(blk.conv1, blk.bn1), (blk.conv2, blk.bn2)]
            if isinstance(blk, Bottleneck):
                convs.append((blk.conv3, blk.bn3))
            units.append(BlockEntry(*convs[0], blk.relu, blk.downsample))
            for conv, bn in convs[1:-1]:
                units.append(BlockMiddle(conv, bn, blk.relu))
            units.append(BlockExit(*convs[-1], blk.relu))
            names += [f"layer{s}.{b}.conv{i}" for i in range(1, len(convs) + 1)]
    units.append(SeqUnit(model.avgpool, nn.Flatten(1), model.fc))
    names.append("classifier")
    return Chain(units, names)


def _register(name: str, block, layers: list[int]) -> None:
    def build(num_classes: int, in_channels: int, image_size: int, width: float = 1.0,
              small: bool | None = None) -> ResNet:
        return build_resnet(block, layers, num_classes, in_channels, image_size, width, small)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"{name} (torchvision {block.__name__} x {layers}), one unit per conv."
    MODELS.register(name, family="resnet", module_type=ResNet, to_chain=resnet_chain)(build)


_register("resnet18", BasicBlock, [2, 2, 2, 2])
_register("resnet50", Bottleneck, [3, 4, 6, 3])
_register("resnet101", Bottleneck, [3, 4, 23, 3])
_register("resnet152", Bottleneck, [3, 8, 36, 3])
