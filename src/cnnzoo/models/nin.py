"""Network in Network (Lin, Chen & Yan 2013), as d2l builds it for Fashion-MNIST.

An mlpconv block is a convolution followed by two 1x1 convolutions: a small multilayer
perceptron slid over every position. The last block has one map per class and a global average
pool turns each map into a logit, so there is no fully connected classifier at all.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ._base import FeaturesHead
from .registry import FROM_D2L, register_model

PAPER = "Lin, Chen & Yan, Network In Network"


def nin_block(in_channels: int, out_channels: int, kernel_size: int, stride: int,
              padding: int) -> nn.Sequential:
    """One mlpconv block: conv k x k, ReLU, then twice (conv 1x1, ReLU), all ``out_channels``
    wide: (N, in_channels, H, W) -> (N, out_channels, H', W')."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 1), nn.ReLU())


CFGS = {  # out channels, kernel, stride, padding of each mlpconv block before the class block
    "nin_d2l": ((96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1)),
}


class NiN(FeaturesHead):
    """``features`` (mlpconv blocks, each followed by a 3/2 max-pool, then dropout) and
    ``classifier`` (an mlpconv block with one map per class, global average pool, flatten):
    (N, C, H, W) -> (N, num_classes) for any input large enough for the convolutions.
    """

    def __init__(self, blocks, num_classes: int = 10, in_channels: int = 1,
                 dropout: float = 0.5):
        super().__init__()
        features = OrderedDict()
        channels = in_channels
        for index, (out_channels, kernel, stride, padding) in enumerate(blocks, start=1):
            features[f"block{index}"] = nin_block(channels, out_channels, kernel, stride, padding)
            features[f"pool{index}"] = nn.MaxPool2d(3, stride=2)
            channels = out_channels
        features["dropout"] = nn.Dropout(dropout)
        self.features = nn.Sequential(features)
        self.classifier = nn.Sequential(OrderedDict([
            (f"block{len(blocks) + 1}", nin_block(channels, num_classes, 3, 1, 1)),
            ("avgpool", nn.AdaptiveAvgPool2d(1)),
            ("flatten", nn.Flatten()),
        ]))


@register_model(family="nin", paper=PAPER, year=2013, input_size=(1, 224, 224), num_classes=10,
                source=FROM_D2L)
def nin_d2l(num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5) -> NiN:
    """d2l's NiN for Fashion-MNIST at 224x224: AlexNet's kernels in mlpconv blocks, global pool.

    Lin et al. 2013's ideas (mlpconv blocks of a conv and two 1x1 convs; a last block with one
    map per class, globally averaged, instead of fully connected layers) on the ImageNet-style
    layout Dive into Deep Learning uses: blocks of 96 (11x11/4), 256 (5x5) and 384 (3x3) maps,
    each followed by a 3/2 max-pool, dropout 0.5, then the class block.
    Departures: the paper's own networks (CIFAR-10/100, SVHN, MNIST) are three mlpconv blocks
    with dropout after each block but the last; this layout and its single dropout are d2l's;
    one input channel and 10 classes; the class block ends in a ReLU before the average, as in
    d2l, so the logits are never negative, and a class whose map is negative everywhere gets no
    gradient: several of the 10 are so at initialisation, with either init, which is why this
    model's result varies so much from run to run (docs/leaderboard.md). PyTorch's default init
    (d2l's recipe applies Xavier itself).
    """
    return NiN(CFGS["nin_d2l"], num_classes, in_channels, dropout)
