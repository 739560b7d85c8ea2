"""MobileNet v1 (Howard et al. 2017): depthwise separable convolutions.

A depthwise separable convolution splits a k x k convolution into a depthwise k x k conv (one
filter per channel, ``groups=channels``) and a pointwise 1x1 conv that mixes the channels; for
3x3 kernels that costs 8 to 9 times fewer multiplies than the full convolution (the paper,
section 3.1; the Chinese notes on classic networks draw the same split).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..errors import CnnzooError
from ._base import FeaturesHead
from .registry import FROM_PAPER, register_model

PAPER = "Howard et al., MobileNets: Efficient Convolutional Neural Networks for Mobile Vision " \
        "Applications"

# the paper's Table 1 after the stem: out channels, stride of the depthwise conv
BLOCKS = (
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    # the table prints "s2" for the 13th block too, but its own 7x7 input and output say s1
    (1024, 2), (1024, 1),
)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> nn.Sequential:
    """Conv (no bias: BatchNorm follows) -> BatchNorm -> ReLU, "same" padding:
    (N, C_in, H, W) -> (N, C_out, H / stride, W / stride)."""
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                       padding=kernel_size // 2, groups=groups, bias=False),
        bn=nn.BatchNorm2d(out_channels),
        relu=nn.ReLU(inplace=True),
    ))


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 (stride here) then pointwise 1x1, each with BN and ReLU (the paper's
    Figure 3): (N, C_in, H, W) -> (N, C_out, H / stride, W / stride)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.depthwise = conv_bn_relu(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pointwise = conv_bn_relu(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class MobileNetV1(FeaturesHead):
    """MobileNet v1: ``features`` (``conv1`` stem, ``block1``..``block13``), global average pool
    and ``fc``.

    ``forward`` maps (N, in_channels, H, W) to (N, num_classes) for any H, W (all convs are
    padded); ``width_mult`` (the paper's alpha) scales every layer's channels.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0):
        super().__init__()
        if not width_mult > 0:
            raise CnnzooError(f"width_mult must be positive (the paper uses 1, 0.75, 0.5, 0.25); "
                              f"got {width_mult}")

        def width(channels: int) -> int:
            return max(1, int(channels * width_mult))

        channels = width(32)
        stages = OrderedDict(conv1=conv_bn_relu(in_channels, channels, 3, stride=2))
        for index, (out_channels, stride) in enumerate(BLOCKS, start=1):
            stages[f"block{index}"] = DepthwiseSeparable(channels, width(out_channels), stride)
            channels = width(out_channels)
        self.features = nn.Sequential(stages)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)

        # the paper does not say; this is torchvision's scheme for its MobileNet v2 and v3
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (N, num_classes)."""
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model(family="mobilenet", paper=PAPER, year=2017, input_size=(3, 224, 224),
                num_classes=1000, source=FROM_PAPER)
def mobilenet_v1(num_classes: int = 1000, in_channels: int = 3,
                 width_mult: float = 1.0) -> MobileNetV1:
    """MobileNet v1 (width multiplier 1.0 by default), the paper's Table 1.

    Howard et al. 2017: a 3x3 conv stem of 32 channels at stride 2, 13 depthwise separable
    blocks (depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU), global average pool, fc 1024
    -> classes. Departures: the 13th block has stride 1 (the table's "s2" contradicts its own
    7x7 sizes); convs have no bias as BatchNorm follows; the paper gives no init, so it is
    torchvision's MobileNet v2 scheme (Kaiming normal fan_out, fc N(0, 0.01)); channels scaled by
    ``width_mult`` (the paper's alpha) are rounded down. The paper's resolution multiplier is
    the input size: any H, W works (192, 160, 128 give Table 7's mult-adds).
    """
    return MobileNetV1(num_classes=num_classes, in_channels=in_channels, width_mult=width_mult)
