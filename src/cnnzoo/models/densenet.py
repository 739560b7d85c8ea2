"""DenseNet (Huang et al. 2017): torchvision's DenseNet-121 and d2l's small DenseNet.

Inside a dense block every layer sees the concatenation of all earlier outputs and adds
``growth_rate`` channels of its own; transition layers between blocks halve the channels with a
1x1 conv and the size with a 2x2 average pool, so the width stays in check.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._base import FeaturesHead, GlobalPoolNet
from .registry import FROM_D2L, FROM_TORCHVISION, register_model

PAPER = "Huang et al., Densely Connected Convolutional Networks"


# --- torchvision's layout --------------------------------------------------------------------

class DenseLayer(nn.Module):
    """BN-ReLU-conv 1x1 (to ``bn_size * growth_rate``) then BN-ReLU-conv 3x3 (to
    ``growth_rate``), the paper's DenseNet-B layer: (N, C, H, W) -> (N, growth_rate, H, W)."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.Module):
    """``num_layers`` dense layers ``denselayer1``..: (N, C, H, W) -> (N, C + num_layers *
    growth_rate, H, W), each layer's output concatenated to its input."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int):
        super().__init__()
        for index in range(num_layers):
            self.add_module(f"denselayer{index + 1}",
                            DenseLayer(in_channels + index * growth_rate, growth_rate, bn_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x)], 1)
        return x


class Transition(nn.Sequential):
    """BN-ReLU-conv 1x1-avgpool 2x2: (N, C_in, H, W) -> (N, C_out, H / 2, W / 2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(OrderedDict(
            norm=nn.BatchNorm2d(in_channels),
            relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
            pool=nn.AvgPool2d(2, stride=2),
        ))


class DenseNet(FeaturesHead):
    """DenseNet-BC with torchvision's module names, so its state_dicts load with ``strict=True``.

    ``features`` holds conv0/norm0/relu0/pool0, denseblock1..4 with transition1..3 between them
    and norm5; ``classifier`` is the linear layer. ``forward`` maps (N, in_channels, H, W) to
    (N, num_classes); the unpadded 2x2 pools of the transitions need H, W >= 29, the global
    average pool takes any larger size (224 on ImageNet).
    """

    def __init__(self, growth_rate: int = 32, block_config: tuple[int, ...] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, num_classes: int = 1000,
                 in_channels: int = 3):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            conv0=nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3, bias=False),
            norm0=nn.BatchNorm2d(num_init_features),
            relu0=nn.ReLU(inplace=True),
            pool0=nn.MaxPool2d(3, stride=2, padding=1),
        ))
        channels = num_init_features
        for index, num_layers in enumerate(block_config, start=1):
            self.features.add_module(f"denseblock{index}",
                                     DenseBlock(num_layers, channels, growth_rate, bn_size))
            channels += num_layers * growth_rate
            if index < len(block_config):
                # compression 0.5: the "C" of DenseNet-BC
                self.features.add_module(f"transition{index}", Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(channels, num_classes)

        # torchvision's init: Kaiming normal (fan_in) convs, BN 1/0, zero linear bias
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 1024, H / 32, W / 32) for DenseNet-121, after norm5 and ReLU."""
        return self.relu(self.features(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (N, num_classes)."""
        return self.classifier(torch.flatten(self.avgpool(x), 1))


@register_model(family="densenet", paper=PAPER, year=2017, input_size=(3, 224, 224),
                num_classes=1000, source=FROM_TORCHVISION)
def densenet121(num_classes: int = 1000, in_channels: int = 3) -> DenseNet:
    """DenseNet-121 (growth 32, blocks 6-12-24-16), torchvision-compatible.

    Huang et al. 2017, Table 1, DenseNet-BC: bottleneck layers of 4 x growth channels and
    compression 0.5 in the transitions, 64 initial features. Departures: none in the layers
    (no dropout, as the paper for ImageNet); torchvision's init (Kaiming normal convs, zero
    classifier bias).
    """
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes, in_channels=in_channels)


# --- d2l's DenseNet --------------------------------------------------------------------------

def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """d2l's BN-ReLU-conv 3x3 (with bias): (N, C_in, H, W) -> (N, C_out, H, W)."""
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(),
                         nn.Conv2d(in_channels, out_channels, 3, padding=1))


class DenseBlockD2L(nn.Module):
    """d2l's dense block of ``num_convs`` conv blocks (in ``net``): (N, C, H, W) ->
    (N, C + num_convs * growth_rate, H, W)."""

    def __init__(self, num_convs: int, in_channels: int, growth_rate: int):
        super().__init__()
        self.net = nn.ModuleList(conv_block(in_channels + i * growth_rate, growth_rate)
                                 for i in range(num_convs))
        self.out_channels = in_channels + num_convs * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.net:
            x = torch.cat((x, block(x)), dim=1)
        return x


def transition_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """d2l's BN-ReLU-conv 1x1 (with bias)-avgpool 2x2: (N, C_in, H, W) -> (N, C_out, H/2, W/2)."""
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(),
                         nn.Conv2d(in_channels, out_channels, 1), nn.AvgPool2d(2, stride=2))


D2L_BLOCKS = (4, 4, 4, 4)  # conv blocks per dense block
D2L_GROWTH = 32


class DenseNetD2L(GlobalPoolNet):
    """d2l's DenseNet: ``b1``, dense blocks with transitions, BN and ReLU in ``features``, then
    global average pool and ``fc``. (N, in_channels, H, W) -> (N, num_classes), H, W >= 29."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        stages = OrderedDict(b1=nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1)))
        channels = 64
        for index, num_convs in enumerate(D2L_BLOCKS, start=1):
            block = DenseBlockD2L(num_convs, channels, D2L_GROWTH)
            stages[f"denseblock{index}"] = block
            channels = block.out_channels
            if index < len(D2L_BLOCKS):
                stages[f"transition{index}"] = transition_block(channels, channels // 2)
                channels //= 2
        stages["norm"] = nn.BatchNorm2d(channels)
        stages["relu"] = nn.ReLU()
        self.features = nn.Sequential(stages)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)


@register_model(family="densenet", paper=PAPER, year=2017, input_size=(1, 96, 96), num_classes=10,
                source=FROM_D2L)
def densenet_d2l(num_classes: int = 10, in_channels: int = 1) -> DenseNetD2L:
    """d2l's DenseNet for Fashion-MNIST at 96x96 (Dive into Deep Learning, "DenseNet").

    Huang et al. 2017's dense connectivity as d2l builds it: b1 as d2l's ResNet (conv 7x7 s2,
    BN, ReLU, max-pool), four dense blocks of four BN-ReLU-conv 3x3 blocks with growth 32,
    transitions halving channels and size, BN, ReLU, global average pool, fc 248 -> classes.
    Departures from the paper: no 1x1 bottleneck in the dense layers, with the transitions'
    compression 0.5 (the paper's DenseNet-C, not the -BC of its ImageNet models); 16 dense
    layers (DenseNet-121 has 58); convs with bias; one input channel, 10 classes, 96x96 inputs.
    PyTorch's default init: d2l's recipe applies Xavier itself.
    """
    return DenseNetD2L(num_classes=num_classes, in_channels=in_channels)
