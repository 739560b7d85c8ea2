"""GoogLeNet / Inception v1 (Szegedy et al. 2014): torchvision's layout, d2l's, and the small
Inception net for MNIST of Liu Er's PyTorch course.

An Inception block runs four branches side by side on the same input (1x1; 1x1 then 3x3; 1x1
then 5x5; 3x3 max-pool then 1x1) and concatenates them along the channels. The 1x1 convs in
front of the 3x3 and 5x5 cut the channels first, which is what keeps the block cheap (the notes
on classic networks: 192 -> 32 channels at 28x28 with a 5x5 costs 120 M multiplies, 12.4 M
through a 16-channel 1x1).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn

from ..errors import CnnzooError
from ..geometry import sequential_output_shape
from ._base import FeaturesHead, GlobalPoolNet, resolve_input_size
from .registry import FROM_D2L, FROM_LIU_ER, FROM_TORCHVISION, register_model

PAPER = "Szegedy et al., Going Deeper with Convolutions"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

INCEPTION = {  # in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj (the paper's Table 1)
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


# --- torchvision's layout --------------------------------------------------------------------

class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 0.001) -> ReLU: (N, C_in, H, W) -> (N, C_out, H', W')."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        # eps 0.001: the weights torchvision offers were ported from TensorFlow, whose default
        # epsilon this is
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """torchvision's Inception block: (N, in, H, W) -> (N, c1x1 + c3x3 + c5x5 + pool_proj, H, W)."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                 ch5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            # 3x3 where the paper has 5x5: inherited from the TensorFlow-slim Inception v1 that
            # torchvision's weights were ported from, and kept so that those weights load
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """An auxiliary classifier on a 14x14 map of block 4a or 4d: (N, C, H, W) -> (N, classes)."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        # adaptive 4x4 where the paper has a 5x5 average pool of stride 3: the same at 224x224
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.avgpool(x))
        x = self.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(self.dropout(x))


class GoogLeNetOutputs(NamedTuple):
    """What GoogLeNet returns in training mode with auxiliary classifiers (torchvision's order)."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor
    aux_logits1: torch.Tensor


class GoogLeNet(FeaturesHead):
    """GoogLeNet with torchvision's module names, so its state_dicts load with ``strict=True``.

    ``forward`` maps (N, in_channels, H, W) to (N, num_classes) logits; in training mode with
    ``aux_logits`` it returns ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``, whose first
    item is the main logits. The unpadded ceil_mode pools need H, W >= 15; the global average pool
    takes any larger size (224 on ImageNet, where the auxiliary heads see the paper's 14x14).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = False,
                 dropout: float = 0.2, dropout_aux: float = 0.7, transform_input: bool = False):
        super().__init__()
        self.aux_logits = aux_logits
        if transform_input and in_channels != 3:
            raise CnnzooError("transform_input needs 3 input channels")
        self.transform_input = transform_input
        # ceil_mode pools without padding: the paper's "same"-padded pools, sizes equal at 224
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = Inception(*INCEPTION["3a"])
        self.inception3b = Inception(*INCEPTION["3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = Inception(*INCEPTION["4a"])
        self.inception4b = Inception(*INCEPTION["4b"])
        self.inception4c = Inception(*INCEPTION["4c"])
        self.inception4d = Inception(*INCEPTION["4d"])
        self.inception4e = Inception(*INCEPTION["4e"])
        # 2x2 where the paper has 3x3: torchvision's layout (same 7x7 output at 224)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = Inception(*INCEPTION["5a"])
        self.inception5b = Inception(*INCEPTION["5b"])

        if aux_logits:
            self.aux1 = InceptionAux(INCEPTION["4b"][0], num_classes, dropout_aux)  # on 4a's output
            self.aux2 = InceptionAux(INCEPTION["4e"][0], num_classes, dropout_aux)  # on 4d's output
        else:
            self.aux1 = self.aux2 = None

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)

        # torchvision's init: N(0, 0.01) weights (its truncation at +-2 is 200 sigma, so never
        # reached) for every conv and linear layer; linear biases keep PyTorch's default
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(module.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision's ImageNet weights for GoogLeNet came from a model fed inputs scaled to
        # [-1, 1]; this maps ImageNet-normalised inputs to that scale, channel by channel
        mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (x * std + mean - 0.5) / 0.5

    def _trunk(self, x: torch.Tensor):
        """The feature map and, in training mode with aux heads, the two auxiliary logits."""
        aux1 = aux2 = None
        if self.transform_input:
            x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        if self.aux1 is not None and self.training:
            aux1 = self.aux1(x)
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        if self.aux2 is not None and self.training:
            aux2 = self.aux2(x)
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        return x, aux2, aux1

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 1024, H / 32, W / 32), (N, 1024, 7, 7) at 224."""
        return self._trunk(x)[0]

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1024, h, w) -> (N, num_classes)."""
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        features, aux2, aux1 = self._trunk(x)
        logits = self.forward_head(features)
        if aux1 is not None:
            return GoogLeNetOutputs(logits, aux2, aux1)
        return logits


@register_model(family="googlenet", paper=PAPER, year=2014, input_size=(3, 224, 224),
                num_classes=1000, source=FROM_TORCHVISION)
def googlenet(num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = False,
              dropout: float = 0.2, transform_input: bool = False) -> GoogLeNet:
    """GoogLeNet (Inception v1), torchvision-compatible; ``aux_logits=True`` adds aux1/aux2.

    Szegedy et al. 2014, Table 1. Departures (all torchvision's, kept so its weights load): every
    conv is followed by BatchNorm (eps 0.001) and has no bias, and there is no local response
    normalisation (BatchNorm came after the paper); the "5x5" branch uses a 3x3 conv; pools are
    unpadded with ceil_mode and maxpool4 is 2x2 (same sizes as the paper's at 224); dropout 0.2
    before the fc instead of 0.4; the aux heads pool adaptively to 4x4 (the paper's 5x5/3 pool
    at 224). torchvision's init: N(0, 0.01) conv and linear weights. ``transform_input=True``
    rescales ImageNet-normalised inputs as torchvision does for its pretrained GoogLeNet weights.
    """
    return GoogLeNet(num_classes=num_classes, in_channels=in_channels, aux_logits=aux_logits,
                     dropout=dropout, transform_input=transform_input)


# --- d2l's GoogLeNet -------------------------------------------------------------------------

class InceptionD2L(nn.Module):
    """d2l's Inception block: convs with bias and ReLU, no BatchNorm, the paper's 5x5 branch.

    Branches ``p1``..``p4`` as d2l names them; (N, in, H, W) -> (N, c1 + c2 + c3 + c4, H, W).
    """

    def __init__(self, in_channels: int, c1: int, c2_reduce: int, c2: int, c3_reduce: int, c3: int,
                 c4: int):
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, 1)
        self.p2_1 = nn.Conv2d(in_channels, c2_reduce, 1)
        self.p2_2 = nn.Conv2d(c2_reduce, c2, 3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3_reduce, 1)
        self.p3_2 = nn.Conv2d(c3_reduce, c3, 5, padding=2)
        self.p4_1 = nn.MaxPool2d(3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p1 = self.relu(self.p1_1(x))
        p2 = self.relu(self.p2_2(self.relu(self.p2_1(x))))
        p3 = self.relu(self.p3_2(self.relu(self.p3_1(x))))
        p4 = self.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def _d2l_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, padding=1)


class GoogLeNetD2L(GlobalPoolNet):
    """d2l's GoogLeNet: stages ``b1``..``b5`` in ``features``, global average pool, ``fc``.

    (N, in_channels, H, W) -> (N, num_classes) for any H, W (padded convs and pools); 96x96
    gives a 3x3 map before the global pool.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            b1=nn.Sequential(nn.Conv2d(in_channels, 64, 7, stride=2, padding=3), nn.ReLU(),
                             _d2l_pool()),
            b2=nn.Sequential(nn.Conv2d(64, 64, 1), nn.ReLU(),
                             nn.Conv2d(64, 192, 3, padding=1), nn.ReLU(), _d2l_pool()),
            b3=nn.Sequential(*(InceptionD2L(*INCEPTION[k]) for k in ("3a", "3b")), _d2l_pool()),
            b4=nn.Sequential(*(InceptionD2L(*INCEPTION[k]) for k in ("4a", "4b", "4c", "4d", "4e")),
                             _d2l_pool()),
            b5=nn.Sequential(*(InceptionD2L(*INCEPTION[k]) for k in ("5a", "5b"))),
        ))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(1024, num_classes)


@register_model(family="googlenet", paper=PAPER, year=2014, input_size=(1, 96, 96), num_classes=10,
                source=FROM_D2L)
def googlenet_d2l(num_classes: int = 10, in_channels: int = 1) -> GoogLeNetD2L:
    """d2l's GoogLeNet for Fashion-MNIST at 96x96 (Dive into Deep Learning, "GoogLeNet").

    Szegedy et al. 2014, Table 1 channels, as d2l builds it: b1 conv 7x7 s2 + max-pool, b2 conv
    1x1 + conv 3x3, then Inception blocks 3a-3b, 4a-4e, 5a-5b with max-pools between, global
    average pool, fc 1024 -> classes. Departures from the paper: one input channel, 10 classes,
    96x96 inputs; no local response normalisation, no auxiliary classifiers, no dropout (d2l's
    simplifications); ReLU after b2's convs as in d2l-en and d2l-zh (Dive-into-DL-PyTorch leaves
    them out; the parameter count is the same). PyTorch's default init: d2l's recipe applies Xavier.
    """
    return GoogLeNetD2L(num_classes=num_classes, in_channels=in_channels)


# --- Liu Er's PyTorch course: a small Inception net for MNIST -------------------------------

class InceptionA(nn.Module):
    """The course's InceptionA: 16 (1x1) + 24 (5x5) + 24 (two 3x3) + 24 (avg-pool, 1x1) = 88
    channels out, no activations inside: (N, in, H, W) -> (N, 88, H, W)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch1x1 = nn.Conv2d(in_channels, 16, 1)
        self.branch5x5_1 = nn.Conv2d(in_channels, 16, 1)
        self.branch5x5_2 = nn.Conv2d(16, 24, 5, padding=2)
        self.branch3x3_1 = nn.Conv2d(in_channels, 16, 1)
        self.branch3x3_2 = nn.Conv2d(16, 24, 3, padding=1)
        self.branch3x3_3 = nn.Conv2d(24, 24, 3, padding=1)
        self.branch_pool_avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = nn.Conv2d(in_channels, 24, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3 = self.branch3x3_3(self.branch3x3_2(self.branch3x3_1(x)))
        branch_pool = self.branch_pool(self.branch_pool_avg(x))
        return torch.cat([branch1x1, branch5x5, branch3x3, branch_pool], dim=1)


class InceptionMNIST(FeaturesHead):
    """The course's net: conv 5x5 -> max-pool -> ReLU -> InceptionA, twice, then ``fc``.

    ``fc`` is sized at construction for ``input_size`` (C, H, W): 88 x 4 x 4 = 1408 at 1x28x28.
    ``forward`` maps (N, C, H, W) to (N, num_classes).
    """

    def __init__(self, num_classes: int = 10, input_size: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        self.conv1 = nn.Conv2d(input_size[0], 10, 5)
        self.pool1 = nn.MaxPool2d(2)
        self.relu1 = nn.ReLU()
        self.incep1 = InceptionA(10)
        self.conv2 = nn.Conv2d(88, 20, 5)
        self.pool2 = nn.MaxPool2d(2)
        self.relu2 = nn.ReLU()
        self.incep2 = InceptionA(20)
        # the Inception blocks keep the size, so the convs and pools alone fix the fc's width
        _, height, width = sequential_output_shape(
            [("conv1", self.conv1), ("pool1", self.pool1), ("conv2", self.conv2),
             ("pool2", self.pool2)], input_size)
        self.fc = nn.Linear(88 * height * width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 88, h, w), (N, 88, 4, 4) at 28x28."""
        x = self.incep1(self.relu1(self.pool1(self.conv1(x))))
        return self.incep2(self.relu2(self.pool2(self.conv2(x))))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 88, h, w) -> (N, num_classes)."""
        return self.fc(torch.flatten(x, 1))


@register_model(family="googlenet", paper=PAPER, year=2014, input_size=(1, 28, 28), num_classes=10,
                source=FROM_LIU_ER, fixed_head=True)
def inception_mnist(num_classes: int = 10, in_channels: int | None = None,
                    input_size=None) -> InceptionMNIST:
    """The small Inception net for MNIST of Liu Er's course "PyTorch deep learning practice".

    The paper's Inception idea at toy scale: conv 1->10 k5, max-pool 2, ReLU, InceptionA (88
    channels), conv 88->20 k5, max-pool 2, ReLU, InceptionA, fc 1408 -> 10. Departures from the
    paper's block (the course's): its own branch widths, an average pool (not max) before the
    pool branch's 1x1, two 3x3 convs in one branch, and no ReLU inside the block. The fc is
    sized for ``input_size`` (default 1x28x28). PyTorch's default init.
    """
    return InceptionMNIST(num_classes, resolve_input_size(in_channels, input_size, (1, 28, 28)))
