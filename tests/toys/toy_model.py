"""A toy network: two conv units and a classifier, cut by as_chain."""
from torch import nn

from fastdrop.models import MODELS, as_chain


@MODELS.register("toy_net", family="toy", to_chain=as_chain)
def toy_net(num_classes, in_channels, image_size, width=1.0, small=None):
    c = max(1, int(8 * width))
    return nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
