"""VGG (Simonyan & Zisserman 2014): configurations A, B, D, E in torchvision's layout, and d2l's
VGG-11 at a quarter of the width.

Every convolution is 3x3 with padding 1 (it keeps the size); a 2x2 max-pool halves it after each
block; three fully connected layers (4096, 4096, classes) with dropout classify.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..geometry import sequential_output_shape
from ._base import FeaturesHead, resolve_input_size
from .registry import FROM_D2L, FROM_TORCHVISION, register_model

PAPER = "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition"

CFGS = {  # the paper's Table 1: output channels of each 3x3 conv, "M" a 2x2 max-pool
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # A
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # B
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],  # D
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],  # E
}


def _conv_layers(cfg: list, in_channels: int, batch_norm: bool = False,
                 width_divisor: int = 1) -> list[nn.Module]:
    """Conv (BatchNorm) ReLU for each number in ``cfg``, MaxPool2d(2, 2) for each "M"."""
    layers = []
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
            continue
        out_channels = item // width_divisor
        layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU())
        in_channels = out_channels
    return layers


def _classifier(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """fc 4096, ReLU, dropout, fc 4096, ReLU, dropout, fc classes: torchvision's indices 0..6."""
    return nn.Sequential(
        nn.Linear(in_features, 4096), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(4096, num_classes))


class VGG(FeaturesHead):
    """``features`` (the conv stack), ``avgpool``, then ``classifier``: (N, C, H, W) ->
    (N, num_classes).

    torchvision's VGG pools adaptively to 7x7, so any input of at least 32x32 works; d2l's has no
    pool there (``avgpool`` is the identity) and a classifier sized for one input size.
    """

    def __init__(self, features: nn.Sequential, avgpool: nn.Module, classifier: nn.Sequential):
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.classifier = classifier

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's map -> (N, num_classes) logits."""
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def _torchvision_init(model: nn.Module) -> None:
    # torchvision's VGG init: Kaiming normal (fan_out) for the convs, N(0, 0.01) for the linear
    # layers, zero biases, BatchNorm at identity
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)


def _vgg(name: str, num_classes: int, in_channels: int, batch_norm: bool,
         dropout: float) -> VGG:
    # flat Sequential of conv/ReLU/pool, so the indices (features.0, features.2, ...) are
    # torchvision's and its state_dicts load with strict=True
    features = nn.Sequential(*_conv_layers(CFGS[name], in_channels, batch_norm))
    model = VGG(features, nn.AdaptiveAvgPool2d((7, 7)),
                _classifier(512 * 7 * 7, num_classes, dropout))
    _torchvision_init(model)
    return model


_tv = dict(family="vgg", paper=PAPER, year=2014, input_size=(3, 224, 224), num_classes=1000,
           source=FROM_TORCHVISION)


@register_model(**_tv)
def vgg11(num_classes: int = 1000, in_channels: int = 3, batch_norm: bool = False,
          dropout: float = 0.5) -> VGG:
    """VGG-11 (configuration A: 8 convs, 3 fully connected layers), torchvision-compatible.

    Simonyan & Zisserman 2014, Table 1, column A: 3x3 convs with padding 1, five 2x2/2 max-pools,
    fc 25088 -> 4096 -> 4096 -> 1000, dropout 0.5 after the first two fc layers as in the paper.
    Departures (torchvision's): an adaptive average pool to 7x7 before the classifier, so other
    input sizes work (the paper feeds the 7x7 map of a 224 crop straight in, and evaluates other
    sizes by turning the fc layers into convolutions); Kaiming-normal init instead of the paper's
    N(0, 0.01); ``batch_norm=True`` adds BatchNorm after every conv (torchvision's vgg11_bn).
    """
    return _vgg("vgg11", num_classes, in_channels, batch_norm, dropout)


@register_model(**_tv)
def vgg13(num_classes: int = 1000, in_channels: int = 3, batch_norm: bool = False,
          dropout: float = 0.5) -> VGG:
    """VGG-13 (configuration B: 10 convs, 3 fully connected layers), torchvision-compatible.

    Simonyan & Zisserman 2014, Table 1, column B. Departures: as ``vgg11`` (torchvision's
    adaptive 7x7 average pool and init; optional BatchNorm).
    """
    return _vgg("vgg13", num_classes, in_channels, batch_norm, dropout)


@register_model(**_tv)
def vgg16(num_classes: int = 1000, in_channels: int = 3, batch_norm: bool = False,
          dropout: float = 0.5) -> VGG:
    """VGG-16 (configuration D: 13 convs, 3 fully connected layers), torchvision-compatible.

    Simonyan & Zisserman 2014, Table 1, column D (3x3 convs only; column C's 1x1 convs are not
    built). Departures: as ``vgg11`` (torchvision's adaptive 7x7 average pool and init; optional
    BatchNorm).
    """
    return _vgg("vgg16", num_classes, in_channels, batch_norm, dropout)


@register_model(**_tv)
def vgg19(num_classes: int = 1000, in_channels: int = 3, batch_norm: bool = False,
          dropout: float = 0.5) -> VGG:
    """VGG-19 (configuration E: 16 convs, 3 fully connected layers), torchvision-compatible.

    Simonyan & Zisserman 2014, Table 1, column E. Departures: as ``vgg11`` (torchvision's
    adaptive 7x7 average pool and init; optional BatchNorm).
    """
    return _vgg("vgg19", num_classes, in_channels, batch_norm, dropout)


# --- d2l's VGG-11 ----------------------------------------------------------------------------

def _vgg_d2l(cfg: list, width_divisor: int, num_classes: int,
             input_size: tuple[int, int, int], dropout: float) -> VGG:
    # d2l groups each block's convs and its pool into one vgg_block: block1..block5
    blocks, block = OrderedDict(), []
    for layer in _conv_layers(cfg, input_size[0], width_divisor=width_divisor):
        block.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            blocks[f"block{len(blocks) + 1}"] = nn.Sequential(*block)
            block = []
    features = nn.Sequential(blocks)
    channels, height, width = sequential_output_shape(features.named_children(), input_size)
    # no pooling before the classifier: fc1's width depends on the input size
    return VGG(features, nn.Identity(),
               _classifier(channels * height * width, num_classes, dropout))


@register_model(family="vgg", paper=PAPER, year=2014, input_size=(1, 224, 224), num_classes=10,
                source=FROM_D2L, fixed_head=True)
def vgg11_d2l(num_classes: int = 10, in_channels: int | None = None, input_size=None,
              dropout: float = 0.5) -> VGG:
    """d2l's VGG-11 for Fashion-MNIST at a quarter of the channels (16-32-64-64-128-128-128-128).

    Simonyan & Zisserman 2014, configuration A, as Dive into Deep Learning trains it: five
    ``vgg_block``s ((1, 16), (1, 32), (2, 64), (2, 128), (2, 128)), fc 128*7*7 -> 4096 -> 4096
    -> 10 with dropout 0.5. Departures: one input channel and 10 classes; every conv has a
    quarter of the paper's channels (d2l's ``ratio = 4``, to train on one GPU in minutes) while
    the fc layers keep 4096 units; fc1 is sized for ``input_size`` (no adaptive pool); PyTorch's
    default init (d2l's recipe applies Xavier itself).
    """
    return _vgg_d2l(CFGS["vgg11"], 4, num_classes,
                    resolve_input_size(in_channels, input_size, (1, 224, 224)), dropout)
