"""ResNet (He et al. 2015): torchvision's layout, d2l's ResNet-18, the small MNIST net of Liu
Er's PyTorch course and
cnnzoo's fast ResNet-9 for Fashion-MNIST.

A residual block adds its input to the output of a few convolutions, ``y = relu(x + F(x))``, so a
block that has nothing to add can learn ``F = 0`` instead of an identity map; a 1x1 projection
(``downsample`` / d2l's ``conv3``) matches the shapes where a stage halves the size and widens.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..errors import CnnzooError
from ..geometry import sequential_output_shape
from ._base import FeaturesHead, GlobalPoolNet, resolve_input_size
from .registry import FROM_CNNZOO, FROM_D2L, FROM_LIU_ER, FROM_TORCHVISION, register_model

PAPER = "He et al., Deep Residual Learning for Image Recognition"


# --- torchvision's layout --------------------------------------------------------------------

class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a shortcut (ResNet-18/34): (N, C_in, H, W) ->
    (N, channels, H / stride, W / stride)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with BatchNorm and a shortcut (ResNet-50/101/152):
    (N, C_in, H, W) -> (N, 4 * channels, H / stride, W / stride)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        # V1.5 (torchvision): the stride sits here, not on conv1 as in the paper, where a
        # strided 1x1 would skip 3 of every 4 positions
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def _stage(block: type[BasicBlock | Bottleneck], in_channels: int, channels: int, blocks: int,
           stride: int) -> nn.Sequential:
    """One stage (``layerN``): ``blocks`` blocks, the first one striding and projecting."""
    out_channels = channels * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        # the paper's option B: a projection only where the shape changes
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels))
    layers = [block(in_channels, channels, stride, downsample)]
    layers += [block(out_channels, channels) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet(FeaturesHead):
    """ResNet with torchvision's module names, so its state_dicts load with ``strict=True``.

    ``forward`` maps (N, in_channels, H, W) to (N, num_classes) logits; every conv and pool is
    padded and the global average pool takes what is left, so any H, W works (224 on ImageNet).
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, int, int, int],
                 num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _stage(block, 64, 64, layers[0], stride=1)
        self.layer2 = _stage(block, 64 * block.expansion, 128, layers[1], stride=2)
        self.layer3 = _stage(block, 128 * block.expansion, 256, layers[2], stride=2)
        self.layer4 = _stage(block, 256 * block.expansion, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        # torchvision's init (He et al. 2015, "Delving deep"): fan_out for the convs; the fc
        # keeps PyTorch's default
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> the last stage's map, (N, 512 * expansion, H / 32, W / 32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) feature map -> (N, num_classes) logits."""
        return self.fc(torch.flatten(self.avgpool(x), 1))


CFGS = {  # block, blocks in layer1..layer4 (the paper's Table 1)
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}


def _resnet(name: str, num_classes: int, in_channels: int) -> ResNet:
    block, layers = CFGS[name]
    return ResNet(block, layers, num_classes=num_classes, in_channels=in_channels)


_tv = dict(family="resnet", paper=PAPER, year=2015, input_size=(3, 224, 224), num_classes=1000,
           source=FROM_TORCHVISION)


@register_model(**_tv)
def resnet18(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-18 (basic blocks 2-2-2-2), torchvision-compatible.

    He et al. 2015, Table 1, with projection shortcuts where the shape changes (option B, as
    torchvision has it; the paper's Table 2 figures for 18 and 34 layers used option A, zero
    padding, which has no weights: 173,824 parameters fewer). Departures: none in the
    layers; the init is torchvision's Kaiming normal with fan_out (the paper's He init with
    fan_in) so that training matches torchvision's recipes.
    """
    return _resnet("resnet18", num_classes, in_channels)


@register_model(**_tv)
def resnet34(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-34 (basic blocks 3-4-6-3), torchvision-compatible.

    He et al. 2015, Table 1, with projection shortcuts where the shape changes (option B, as
    torchvision has it; the paper's Table 2 used option A, zero padding, for 34 layers).
    Departures: none in the layers; the init is torchvision's Kaiming normal with fan_out.
    """
    return _resnet("resnet34", num_classes, in_channels)


@register_model(**_tv)
def resnet50(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-50 (bottleneck blocks 3-4-6-3, stride on the 3x3), torchvision-compatible.

    He et al. 2015, Table 1, with projection shortcuts where the shape changes (option B).
    Departures: the stride of a stage's first bottleneck is on its 3x3 conv, not its first 1x1
    ("ResNet V1.5", torchvision's layout: a strided 1x1 would skip 3 of every 4 positions);
    torchvision's init (Kaiming normal, fan_out).
    """
    return _resnet("resnet50", num_classes, in_channels)


@register_model(**_tv)
def resnet101(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-101 (bottleneck blocks 3-4-23-3, stride on the 3x3), torchvision-compatible.

    He et al. 2015, Table 1, with projection shortcuts where the shape changes (option B).
    Departures: stride on the bottleneck's 3x3 conv ("ResNet V1.5", torchvision's layout);
    torchvision's init (Kaiming normal, fan_out).
    """
    return _resnet("resnet101", num_classes, in_channels)


@register_model(**_tv)
def resnet152(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-152 (bottleneck blocks 3-8-36-3, stride on the 3x3), torchvision-compatible.

    He et al. 2015, Table 1, with projection shortcuts where the shape changes (option B).
    Departures: stride on the bottleneck's 3x3 conv ("ResNet V1.5", torchvision's layout);
    torchvision's init (Kaiming normal, fan_out).
    """
    return _resnet("resnet152", num_classes, in_channels)


# --- d2l's ResNet-18 -------------------------------------------------------------------------

class Residual(nn.Module):
    """d2l's residual block: two 3x3 convs (with bias) and BatchNorm, an optional 1x1 ``conv3``
    on the shortcut: (N, C_in, H, W) -> (N, C_out, H / stride, W / stride)."""

    def __init__(self, in_channels: int, out_channels: int, use_1x1conv: bool = False,
                 stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, 1, stride=stride) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x if self.conv3 is None else self.conv3(x)
        return self.relu(y + shortcut)


D2L_STAGES = ((64, 2), (128, 2), (256, 2), (512, 2))  # out channels, residual blocks (b2..b5)


class ResNetD2L(GlobalPoolNet):
    """d2l's ResNet-18 for 1x96x96 Fashion-MNIST: stages ``b1``..``b5`` in ``features``, then
    global average pool and ``fc``. (N, in_channels, H, W) -> (N, num_classes)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        stages = OrderedDict(b1=nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1)))
        channels = 64
        for index, (out_channels, count) in enumerate(D2L_STAGES, start=2):
            first_stage = index == 2  # b1's max-pool already halved the size
            residuals = [Residual(channels, out_channels, use_1x1conv=not first_stage,
                                  stride=1 if first_stage else 2)]
            residuals += [Residual(out_channels, out_channels) for _ in range(1, count)]
            stages[f"b{index}"] = nn.Sequential(*residuals)
            channels = out_channels
        self.features = nn.Sequential(stages)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)


@register_model(family="resnet", paper=PAPER, year=2015, input_size=(1, 96, 96), num_classes=10,
                source=FROM_D2L)
def resnet18_d2l(num_classes: int = 10, in_channels: int = 1) -> ResNetD2L:
    """d2l's ResNet-18 for Fashion-MNIST at 96x96 (Dive into Deep Learning, "ResNet").

    He et al. 2015's ResNet-18 as d2l builds it: b1 (conv 7x7 s2, BN, ReLU, max-pool 3/2), b2..b5
    of two ``Residual`` blocks each (a 1x1 projection ``conv3`` on the first block of b3..b5),
    global average pool, fc 512 -> classes. Departures from the paper: one input channel, 10
    classes and 96x96 inputs (Fashion-MNIST); the convs carry a bias although BatchNorm follows
    them (d2l's choice, redundant but harmless). PyTorch's default init: d2l's recipe applies
    Xavier itself.
    """
    return ResNetD2L(num_classes=num_classes, in_channels=in_channels)


# --- Liu Er's PyTorch course: a small residual net for MNIST ---------------------------------

class ResidualBlock(nn.Module):
    """The course's residual block: ``relu(x + conv2(relu(conv1(x))))``, two 3x3 convs (padding 1,
    bias, no BatchNorm) that keep (N, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv1(x))
        y = self.conv2(y)
        return self.relu(x + y)


class ResidualMNIST(FeaturesHead):
    """The course's residual net: conv 5x5 -> pool -> ReLU -> residual block, twice, then ``fc``.

    ``fc`` is sized at construction for ``input_size`` (C, H, W): 32 x 4 x 4 = 512 at 1x28x28.
    ``forward`` maps (N, C, H, W) to (N, num_classes).
    """

    def __init__(self, num_classes: int = 10, input_size: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        self.conv1 = nn.Conv2d(input_size[0], 16, 5)
        self.pool1 = nn.MaxPool2d(2)
        self.relu1 = nn.ReLU()
        self.rblock1 = ResidualBlock(16)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.pool2 = nn.MaxPool2d(2)
        self.relu2 = nn.ReLU()
        self.rblock2 = ResidualBlock(32)
        # the residual blocks keep the size, so the convs and pools alone fix the fc's width
        channels, height, width = sequential_output_shape(
            [("conv1", self.conv1), ("pool1", self.pool1), ("conv2", self.conv2),
             ("pool2", self.pool2)], input_size)
        self.fc = nn.Linear(channels * height * width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 32, h, w), (N, 32, 4, 4) at 28x28."""
        x = self.rblock1(self.relu1(self.pool1(self.conv1(x))))
        return self.rblock2(self.relu2(self.pool2(self.conv2(x))))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 32, h, w) -> (N, num_classes)."""
        return self.fc(torch.flatten(x, 1))


@register_model(family="resnet", paper=PAPER, year=2015, input_size=(1, 28, 28), num_classes=10,
                source=FROM_LIU_ER, fixed_head=True)
def residual_mnist(num_classes: int = 10, in_channels: int | None = None,
                   input_size=None) -> ResidualMNIST:
    """The small residual net for MNIST of Liu Er's course "PyTorch deep learning practice".

    Not the paper's ResNet but its idea at toy scale: conv 1->16 k5, max-pool 2, ReLU, a
    residual block of two 3x3 convs, conv 16->32 k5, max-pool 2, ReLU, another residual block,
    fc 512 -> 10. No BatchNorm and no projection shortcuts (the blocks keep their shape); max-pool
    and ReLU commute, so their order is the course's without changing the result. The fc is sized
    for ``input_size`` (default 1x28x28). PyTorch's default init.
    """
    return ResidualMNIST(num_classes, resolve_input_size(in_channels, input_size, (1, 28, 28)))


# --- cnnzoo's own: the fast small ResNet for Fashion-MNIST ----------------------------------

def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        bn=nn.BatchNorm2d(out_channels), relu=nn.ReLU(inplace=True)))


class Residual9(nn.Module):
    """Two conv-BN-ReLU layers added to their input: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.layer1 = _conv_bn_relu(channels, channels)
        self.layer2 = _conv_bn_relu(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer2(self.layer1(x))


class ResNet9(GlobalPoolNet):
    """prep conv, then three stages (conv-BN-ReLU, max-pool 2, and a residual pair of convs in
    the first and last), global average pooling and one linear layer."""

    def __init__(self, num_classes: int, in_channels: int, width: int):
        super().__init__()
        w = width
        self.features = nn.Sequential(OrderedDict(
            prep=_conv_bn_relu(in_channels, w),
            conv1=_conv_bn_relu(w, 2 * w), pool1=nn.MaxPool2d(2), res1=Residual9(2 * w),
            conv2=_conv_bn_relu(2 * w, 4 * w), pool2=nn.MaxPool2d(2),
            conv3=_conv_bn_relu(4 * w, 8 * w), pool3=nn.MaxPool2d(2), res3=Residual9(8 * w)))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        # with a bias, which Page's linear layer lacks: nn.Linear's default, as in every zoo head
        self.fc = nn.Linear(8 * w, num_classes)


@register_model(family="resnet", paper="Page, How to train your ResNet (DAWNBench ResNet-9)",
                year=2018, input_size=(1, 28, 28), num_classes=10, source=FROM_CNNZOO)
def resnet9_fmnist(num_classes: int = 10, in_channels: int = 1, width: int = 32) -> ResNet9:
    """cnnzoo's fast ResNet for Fashion-MNIST: Page's DAWNBench ResNet-9 at half width.

    The layout of Page's CIFAR-10 ResNet-9 (prep 64, stages 128-256-512, residual pairs after the
    first and last, 94 % on CIFAR-10 in 24 epochs) with every width halved (32, 64, 128, 256):
    1.6 M parameters, 69 M multiply-adds at 28x28 (28 -> 14 -> 7 -> 3). Departures: global
    average pooling instead of max pooling, no 0.125 scaling of the logits, and a bias on the
    final linear layer (Page's has none; 10 parameters). It is the model of the leaderboard's
    ``best`` entry (``--recipe best``). PyTorch's default init.
    """
    if width < 1:
        raise CnnzooError(f"width must be at least 1, not {width}")
    return ResNet9(num_classes, in_channels, width)
