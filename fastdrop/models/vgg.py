"""VGG-11/16/19 with batch norm from torchvision's `make_layers`/`VGG`, cut into one unit per conv.

Small inputs (<= 64 px, i.e. MNIST 28 px and CIFAR-10 32 px): the five max-pools run with
`ceil_mode=True`, so 28 px goes 28-14-7-4-2-1 (32 px: 32-16-8-4-2-1) instead of collapsing to 0, and the
adaptive average pool before the classifier is 1x1 instead of torchvision's 7x7 (which would only copy
the 1x1 map 49 times); the classifier keeps torchvision's three Linear layers and dropout with its first
layer sized for 512 (x width) inputs. Inputs above 64 px use torchvision's layout unchanged. `width`
scales every conv's channels and the classifier's hidden size.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.vgg import VGG, cfgs, make_layers

from .chain import Chain, SeqUnit

DEPTH_TO_CFG = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def build_vgg(name: str, num_classes: int, in_channels: int, image_size: int, width: float = 1.0,
              small: bool | None = None):
    """`small`: the small-image layout above (default: for images <= 64 px); False keeps torchvision's."""
    cfg = [v if v == "M" else _scaled(v, width) for v in cfgs[DEPTH_TO_CFG[name]]]
    features = make_layers(cfg, batch_norm=True)
    first = features[0]
    if in_channels != first.in_channels:
        features[0] = nn.Conv2d(in_channels, first.out_channels, kernel_size=3, padding=1)
    # torchvision's VGG allocates a 25088x4096 classifier we replace below: build the shell on the meta
    # device (no memory, no time), then give it real layers.
    with torch.device("meta"):
        model = VGG(nn.Sequential(), num_classes=num_classes, init_weights=False)
    model.features = features
    last_c = cfg[-2]
    hidden = _scaled(4096, width)
    small = image_size <= 64 if small is None else small
    if small:
        for m in model.features:
            if isinstance(m, nn.MaxPool2d):
                m.ceil_mode = True
        model.avgpool = nn.AdaptiveAvgPool2d(1)
    spatial = 1 if small else 7
    cls = model.classifier  # Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear
    cls[0] = nn.Linear(last_c * spatial * spatial, hidden)
    cls[3] = nn.Linear(hidden, hidden)
    cls[6] = nn.Linear(hidden, num_classes)
    _init_like_torchvision(model)
    return model


def _init_like_torchvision(model: VGG):
    # The same initialisation torchvision's VGG applies (we replaced layers after its __init__).
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)


def vgg_chain(model: VGG) -> Chain:
    """One unit per Conv2d (with its BN, ReLU and any following max-pool) + the classifier."""
    groups, names = [], []
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            groups.append([m])
            names.append(f"conv{len(groups)}")
        else:
            groups[-1].append(m)
    units = [SeqUnit(*g) for g in groups]
    units.append(SeqUnit(model.avgpool, nn.Flatten(1), model.classifier))
    names.append("classifier")
    return Chain(units, names)
