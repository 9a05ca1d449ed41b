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
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from .chain import Chain, SeqUnit, State, Unit

LAYOUT = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


class _ScaledResNet(ResNet):
    """torchvision's ResNet whose stage widths are multiplied by `width` (torchvision hard-codes 64..512)."""

    def __init__(self, block, layers, width: float, **kw):
        self._width = width
        super().__init__(block, layers, **kw)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if self.inplanes == 64 and planes == 64 and not hasattr(self, "_rescaled"):
            # First stage: torchvision set inplanes=64 for the stem; rebuild the stem at the scaled width.
            self._rescaled = True
            self.inplanes = max(1, int(round(64 * self._width)))
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = self._norm_layer(self.inplanes)
        return super()._make_layer(block, max(1, int(round(planes * self._width))), blocks, stride, dilate)


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


def build_resnet(name: str, num_classes: int, in_channels: int, image_size: int, width: float = 1.0,
                 small: bool | None = None) -> ResNet:
    """`small`: the CIFAR stem (default: for images <= 64 px); False keeps torchvision's 7x7 + max-pool."""
    block, layers = LAYOUT[name]
    model = _ScaledResNet(block, layers, width, num_classes=num_classes)
    if model.fc.in_features != model.inplanes:  # torchvision sizes fc for width 1
        model.fc = nn.Linear(model.inplanes, num_classes)
    c = model.conv1.out_channels
    if image_size <= 64 if small is None else small:
        model.conv1 = nn.Conv2d(in_channels, c, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, c, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
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
