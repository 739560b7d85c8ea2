"""LeNet-5 (LeCun et al. 1998) as the paper builds it, and the textbook LeNets of d2l and
Dive-into-DL-PyTorch.

The paper's network reads C1 -> S2 -> C3 -> S4 -> C5 -> F6 -> output: convolutions ("C"),
trainable subsampling ("S"), a fully connected layer and Euclidean RBF output units, with the
scaled tanh after every layer but the last. The textbook versions keep the 6-16-120-84 widths and
swap the rest for plain modules: sigmoid, average or max pooling, a full C3, a linear output.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import CnnzooError
from ..geometry import layer_output_hw, sequential_output_shape
from ._base import FeaturesHead, resolve_input_size
from .registry import FROM_D2L, FROM_D2L_PYTORCH, FROM_PAPER, register_model

PAPER = "LeCun et al., Gradient-Based Learning Applied to Document Recognition"


class LeNet(FeaturesHead):
    """``features`` (convolution and pooling stages), then ``classifier`` (flatten, fully
    connected layers, output): (N, C, H, W) -> (N, num_classes).

    ``input_size`` is the (C, H, W) the first fully connected layer was sized for;
    ``forward_features`` gives the last feature map, (N, 120, 1, 1) for the paper's LeNet-5.
    """

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential,
                 input_size: tuple[int, int, int]):
        super().__init__()
        self.input_size = input_size
        self.features = features
        self.classifier = classifier


# --- the paper's layers ----------------------------------------------------------------------

class ScaledTanh(nn.Module):
    """The paper's squashing function ``f(a) = 1.7159 tanh(2a / 3)`` (Appendix A), elementwise.

    The constants make ``f(1) = 1`` and ``f(-1) = -1``, where the second derivative peaks.
    """

    amplitude = 1.7159
    slope = 2 / 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)


class Subsampling(nn.AvgPool2d):
    """A subsampling layer (S2, S4): each unit sums a non-overlapping k x k window, multiplies the
    sum by a trainable per-map coefficient and adds a trainable per-map bias.

    (N, C, H, W) -> (N, C, H / k, W / k); 2 parameters per map. It is a pooling layer to every
    shape tool (a subclass of ``nn.AvgPool2d`` with divisor 1).
    """

    def __init__(self, channels: int, kernel_size: int = 2):
        super().__init__(kernel_size, divisor_override=1)  # divisor 1: the sum, not the mean
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's default for a unit with fan-in k*k: uniform in +-1/sqrt(fan_in)
        bound = 1 / self.kernel_size
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.weight[:, None, None] + self.bias[:, None, None]

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, {super().extra_repr()}"


class PartialConv2d(nn.Conv2d):
    """A convolution whose output map ``j`` sees only the input maps listed in ``table[j]``.

    ``weight`` holds one k x k kernel per connection, shape (connections, 1, k, k), so the layer
    has exactly the table's parameters; ``forward`` scatters them into a dense kernel that is zero
    elsewhere and runs one ordinary convolution: (N, in_channels, H, W) -> (N, len(table), H', W').
    """

    def __init__(self, in_channels: int, table, kernel_size: int, stride: int = 1,
                 padding: int = 0):
        super().__init__(in_channels, len(table), kernel_size, stride=stride, padding=padding)
        pairs = [(out, source) for out, sources in enumerate(table) for source in sources]
        if not all(0 <= source < in_channels for _, source in pairs):
            raise ValueError(f"a connection table for {in_channels} input maps names another map")
        self.table = tuple(tuple(sources) for sources in table)
        # derived from the table, so left out of the state_dict
        self.register_buffer("out_index", torch.tensor([out for out, _ in pairs]),
                             persistent=False)
        self.register_buffer("in_index", torch.tensor([source for _, source in pairs]),
                             persistent=False)
        self.weight = nn.Parameter(torch.empty(len(pairs), 1, *self.kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not hasattr(self, "table"):  # Conv2d.__init__ calls this on the dense weight we drop
            return
        # PyTorch's default bound 1/sqrt(fan_in), with each output map's own fan-in
        area = self.kernel_size[0] * self.kernel_size[1]
        fan_in = torch.tensor([len(sources) * area for sources in self.table],
                              dtype=self.weight.dtype, device=self.weight.device)
        bound = fan_in.rsqrt()
        with torch.no_grad():
            self.weight.uniform_(-1, 1).mul_(bound[self.out_index].view(-1, 1, 1, 1))
            self.bias.uniform_(-1, 1).mul_(bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.weight.new_zeros(self.out_channels, self.in_channels, *self.kernel_size)
        kernel = kernel.index_put((self.out_index, self.in_index), self.weight[:, 0])
        return F.conv2d(x, kernel, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, connections={len(self.out_index)}"


class RBFOutput(nn.Module):
    """Euclidean radial basis function units with fixed prototypes (the paper's output layer).

    Unit ``i`` computes ``y_i = sum_j (x_j - w_ij)^2`` (``distances``); ``forward`` returns
    ``-y``, so that the nearest prototype has the largest logit: (N, features) -> (N, classes).
    The prototypes (classes, features) are a buffer: they are never trained.
    """

    def __init__(self, prototypes: torch.Tensor):
        super().__init__()
        self.register_buffer("prototypes", prototypes)

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, None, :] - self.prototypes).pow(2).sum(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.distances(x)

    def extra_repr(self) -> str:
        classes, features = self.prototypes.shape
        return f"in_features={features}, out_features={classes}"


def rbf_prototypes(num_classes: int, features: int = 84) -> torch.Tensor:
    """Fixed +1/-1 codes, (num_classes, features): rows 1..num_classes of the 128 x 128
    Sylvester-Hadamard matrix, first ``features`` columns.

    For 10 classes and 84 features every two codes have an inner product of 0 or 4, so all
    classes are nearly equally far apart (squared distance 160 or 168).
    """
    if not 1 <= features <= 128:
        raise ValueError(f"Hadamard codes of order 128 have at most 128 columns, not {features}")
    if not 1 <= num_classes <= 127:
        raise CnnzooError(f"lenet5's RBF output has codes for 1 to 127 classes, not {num_classes}")
    rows = torch.arange(1, num_classes + 1)[:, None]
    columns = torch.arange(features)[None, :]
    bits = rows & columns
    parity = sum((bits >> shift) & 1 for shift in range(7)) % 2  # H[i, j] = (-1)^popcount(i & j)
    return (1 - 2 * parity).float()


# Table I of the paper: the S2 maps each C3 map takes its input from
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),  # 3 contiguous
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),  # 4
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),  # 4 non-contiguous
    (0, 1, 2, 3, 4, 5),  # all 6
)


def _lenet5_paper(num_classes: int, input_size: tuple[int, int, int]) -> LeNet:
    features = nn.Sequential(OrderedDict([
        ("c1", nn.Conv2d(input_size[0], 6, 5)), ("tanh1", ScaledTanh()),
        ("s2", Subsampling(6)), ("tanh2", ScaledTanh()),
        ("c3", PartialConv2d(6, C3_TABLE, 5)), ("tanh3", ScaledTanh()),
        ("s4", Subsampling(16)), ("tanh4", ScaledTanh()),
        ("c5", nn.Conv2d(16, 120, 5)), ("tanh5", ScaledTanh()),
    ]))
    channels, height, width = sequential_output_shape(features.named_children(), input_size)
    classifier = nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("f6", nn.Linear(channels * height * width, 84)), ("tanh6", ScaledTanh()),
        ("output", RBFOutput(rbf_prototypes(num_classes, 84))),
    ]))
    return LeNet(features, classifier, input_size)


def lenet5_connections(model: LeNet) -> int:
    """The number of connections of a paper LeNet-5 (section II.B counts 340,908 at 32x32).

    A connection is one input (or the bias) of one unit: a convolution unit has its kernel's
    inputs plus a bias, a subsampling unit its k*k window plus a bias, an F6 unit its inputs plus
    a bias, an RBF unit its inputs. Counted from ``model``'s layers for the ``model.input_size`` it was built for.
    """
    channels, height, width = model.input_size
    total = 0
    for layer in model.features:
        out = layer_output_hw(layer, (height, width))
        if isinstance(layer, nn.Conv2d):  # PartialConv2d's weight holds only the table's kernels
            total += (layer.weight.numel() + layer.bias.numel()) * out[0] * out[1]
            channels = layer.out_channels
        elif isinstance(layer, Subsampling):
            total += (layer.kernel_size ** 2 + 1) * channels * out[0] * out[1]
        if out is not None:
            height, width = out
    for layer in model.classifier:
        if isinstance(layer, nn.Linear):
            total += layer.weight.numel() + layer.bias.numel()
        elif isinstance(layer, RBFOutput):
            total += layer.prototypes.numel()
    return total


@register_model(family="lenet", paper=PAPER, year=1998, input_size=(1, 32, 32), num_classes=10,
                source=FROM_PAPER, fixed_head=True)
def lenet5(num_classes: int = 10, in_channels: int | None = None, input_size=None) -> LeNet:
    """LeNet-5 as in the paper: scaled tanh, trainable subsampling, C3's partial connections, RBF.

    LeCun et al. 1998, section II.B: C1 (6 maps, 5x5), S2, C3 (16 maps wired to S2 by Table I,
    1,516 parameters), S4, C5 (120 maps, a 5x5 convolution), F6 (84 units), 10 Euclidean RBF
    output units; 60,000 trainable parameters and 340,908 connections at 32x32. Every layer
    before the output applies ``1.7159 tanh(2a/3)``.
    Departures: the RBF prototypes are fixed +1/-1 codes from a Hadamard matrix (see
    ``rbf_prototypes``), not the paper's hand-drawn 7x12 digit bitmaps, which we cannot
    reproduce; the model returns the negated RBF distances as logits, so argmax is the nearest
    prototype and cross-entropy applies (it is the paper's discriminative criterion, Eq. 9, with
    its constant ``j`` taken to infinity); PyTorch's default init (bound 1/sqrt(fan-in)) instead
    of the paper's uniform +-2.4/fan-in. Other input sizes widen F6's input to 120 x h x w.
    """
    return _lenet5_paper(num_classes, resolve_input_size(in_channels, input_size, (1, 32, 32)))


# --- the textbook LeNets ---------------------------------------------------------------------

CFGS = {  # pooling, conv1 padding, BatchNorm after each conv and hidden linear layer
    "lenet5_d2l": dict(pool=nn.AvgPool2d, padding=2, batch_norm=False),
    "lenet5_maxpool": dict(pool=nn.MaxPool2d, padding=0, batch_norm=False),
    "lenet5_bn_d2l": dict(pool=nn.AvgPool2d, padding=0, batch_norm=True),
}


def lenet_textbook(name: str, num_classes: int, input_size: tuple[int, int, int],
                   norm2d: Callable[[int], nn.Module] = nn.BatchNorm2d,
                   norm1d: Callable[[int], nn.Module] = nn.BatchNorm1d) -> LeNet:
    """The textbook LeNet of ``CFGS[name]``: conv 6 k5, sigmoid, pool 2/2, conv 16 k5, sigmoid,
    pool 2/2, then linear 120, 84, ``num_classes`` with sigmoids between.

    Where the configuration has BatchNorm, ``norm2d(channels)`` follows each convolution and
    ``norm1d(features)`` each hidden linear layer (pass another normalisation to swap it in).
    fc1 is sized for ``input_size`` (C, H, W); the model maps (N, C, H, W) to (N, num_classes).
    """
    cfg = CFGS[name]
    features = OrderedDict()
    for index, (in_channels, out_channels) in enumerate([(input_size[0], 6), (6, 16)], start=1):
        padding = cfg["padding"] if index == 1 else 0
        features[f"conv{index}"] = nn.Conv2d(in_channels, out_channels, 5, padding=padding)
        if cfg["batch_norm"]:
            features[f"bn{index}"] = norm2d(out_channels)
        features[f"sigmoid{index}"] = nn.Sigmoid()
        features[f"pool{index}"] = cfg["pool"](2, stride=2)
    features = nn.Sequential(features)
    channels, height, width = sequential_output_shape(features.named_children(), input_size)

    classifier = OrderedDict(flatten=nn.Flatten())
    widths = [channels * height * width, 120, 84]
    for index, (in_features, out_features) in enumerate(zip(widths, widths[1:]), start=1):
        classifier[f"fc{index}"] = nn.Linear(in_features, out_features)
        if cfg["batch_norm"]:
            classifier[f"bn{index + 2}"] = norm1d(out_features)
        classifier[f"sigmoid{index + 2}"] = nn.Sigmoid()
    classifier["fc3"] = nn.Linear(84, num_classes)
    return LeNet(features, nn.Sequential(classifier), input_size)


_textbook = dict(family="lenet", paper=PAPER, year=1998, input_size=(1, 28, 28), num_classes=10)


@register_model(**_textbook, source=FROM_D2L, fixed_head=True)
def lenet5_d2l(num_classes: int = 10, in_channels: int | None = None, input_size=None) -> LeNet:
    """d2l's LeNet for Fashion-MNIST: sigmoid, average pooling, conv1 padded to keep 28x28.

    LeCun et al. 1998's widths (6, 16, 120, 84) as Dive into Deep Learning builds them (6.6).
    Departures: sigmoid instead of the scaled tanh; plain average pooling instead of trainable
    subsampling; C3 connects all 6 maps (2,416 parameters, not 1,516); C5 is a linear layer on
    the flattened 16x5x5 map (the same thing at this size); a linear output layer instead of RBF
    units; conv1 padding 2 turns the 28x28 images into the paper's 32x32 extent. PyTorch's
    default init (d2l's recipe applies Xavier itself).
    """
    return lenet_textbook("lenet5_d2l", num_classes,
                          resolve_input_size(in_channels, input_size, (1, 28, 28)))


@register_model(**_textbook, source=FROM_D2L_PYTORCH, fixed_head=True)
def lenet5_maxpool(num_classes: int = 10, in_channels: int | None = None,
                   input_size=None) -> LeNet:
    """Dive-into-DL-PyTorch's LeNet (d2l-zh's first edition): sigmoid, max pooling, no padding.

    LeCun et al. 1998's widths (6, 16, 120, 84). Departures: as ``lenet5_d2l`` (sigmoid, full C3,
    C5 as a linear layer, linear output), with max pooling instead of trainable subsampling and
    no padding, so the 28x28 input leaves a 16x4x4 map and fc1 has 256 inputs. PyTorch's init.
    """
    return lenet_textbook("lenet5_maxpool", num_classes,
                          resolve_input_size(in_channels, input_size, (1, 28, 28)))


@register_model(family="lenet", paper="Ioffe & Szegedy, Batch Normalization (on " + PAPER + ")",
                year=2015, input_size=(1, 28, 28), num_classes=10, source=FROM_D2L, fixed_head=True)
def lenet5_bn_d2l(num_classes: int = 10, in_channels: int | None = None,
                  input_size=None) -> LeNet:
    """d2l's LeNet with batch normalization (nn.BatchNorm2d / nn.BatchNorm1d).

    Ioffe & Szegedy 2015 applied to the textbook LeNet: BatchNorm between each conv or hidden
    linear layer and its sigmoid, average pooling, no padding (fc1 has 16x4x4 = 256 inputs).
    Departures from LeCun et al. 1998: as ``lenet5_maxpool``, with average pooling; the
    BatchNorm layers are the point of the variant. PyTorch's default init.
    """
    return lenet_textbook("lenet5_bn_d2l", num_classes,
                          resolve_input_size(in_channels, input_size, (1, 28, 28)))


@register_model(family="lenet", paper="Ioffe & Szegedy, Batch Normalization (on " + PAPER + ")",
                year=2015, input_size=(1, 28, 28), num_classes=10, source=FROM_D2L, fixed_head=True)
def lenet5_bn_scratch_d2l(num_classes: int = 10, in_channels: int | None = None,
                          input_size=None) -> LeNet:
    """d2l's BN-LeNet with the from-scratch BatchNorm of ``cnnzoo.scratch`` (section 5.10).

    The same network and parameter count as ``lenet5_bn_d2l``; its BatchNorm layers are the
    textbook's own code (with PyTorch's running-statistics convention, so the two agree).
    """
    from ..scratch import BatchNorm

    return lenet_textbook("lenet5_bn_d2l", num_classes,
                          resolve_input_size(in_channels, input_size, (1, 28, 28)),
                          norm2d=functools.partial(BatchNorm, num_dims=4),
                          norm1d=functools.partial(BatchNorm, num_dims=2))
