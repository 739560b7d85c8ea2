"""Fully connected layers as convolutions: a fixed-size classifier slid over larger images.

A linear layer on a flattened C x h x w map is a convolution with an h x w kernel over that map, and
every later linear layer a 1x1 convolution (the Chinese notes on classic networks draw it for
VGG-16: FC 7x7x512 -> 4096 becomes a 7x7 conv with 4096 filters). With the trained weights copied,
the converted network gives the original's logits as a 1x1 map on the original input size and, on a
larger input, a map of scores, one per window of the original size, at the stride of the feature map
(32 px for VGG and AlexNet's pool5, 4 px for the LeNets) - the "dense evaluation" VGG's paper uses
at test time.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..errors import CnnzooError
from ..geometry import sequential_output_shape
from ..scratch import BatchNorm as ScratchBatchNorm
from ._base import FeaturesHead
from .alexnet import AlexNet
from .googlenet import InceptionMNIST
from .lenet import LeNet, RBFOutput, ScaledTanh
from .resnet import ResidualMNIST
from .vgg import VGG

# layers that act on each value alone, the same on a flattened vector as on a map
ELEMENTWISE = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Dropout, ScaledTanh)


class FullyConvolutional(FeaturesHead):
    """A network's ``features`` followed by its classifier rebuilt as convolutions (``head``):
    (N, C, H, W) -> (N, num_classes, h, w) class scores, (N, num_classes, 1, 1) on the input size
    the original classifier was built for.

    ``input_size`` is that original (C, H, W) where it is known, else None.
    """

    def __init__(self, features: nn.Module, head: nn.Sequential,
                 input_size: tuple[int, int, int] | None = None):
        super().__init__()
        self.input_size = input_size
        self.features = features
        self.head = head

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map -> (N, num_classes, h, w) scores."""
        return self.head(x)


class RBFOutput2d(nn.Module):
    """LeNet-5's RBF output units at every position of a map: (N, features, H, W) ->
    (N, classes, H, W), each value the negated squared distance to a class's fixed prototype."""

    def __init__(self, prototypes: torch.Tensor):
        super().__init__()
        self.register_buffer("prototypes", prototypes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels last, then the same reduction as RBFOutput, so the values match it exactly
        vectors = x.permute(0, 2, 3, 1)[..., None, :]
        return -(vectors - self.prototypes).pow(2).sum(-1).permute(0, 3, 1, 2)


class _FeaturesOf(nn.Module):
    """A model without its head, run up to its ``forward_features``."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.forward_features(x)


def to_fully_convolutional(model: nn.Module, input_size=None) -> FullyConvolutional:
    """The model with its fully connected head turned into convolutions, trained weights copied.

    Works for the zoo's models with a fixed-size head: the LeNets (F6 and the RBF output of the 1998
    LeNet-5 included; a BatchNorm over features becomes one over channels with the same statistics,
    for ``nn.BatchNorm1d`` and the from-scratch ``BatchNorm`` alike), AlexNet, VGG, and the two
    MNIST nets of Liu Er's course. The first linear layer becomes an h x w convolution over the last
    C x h x w feature map, the others 1x1 convolutions. ``input_size`` (C, H, W) is the size the
    head was built for when the model does not record it (d2l's VGG and the course's nets assume a
    square map otherwise). torchvision's VGG pools adaptively to 7x7 before its classifier; at
    224x224 that pool is the identity, and the converted network drops it, so it equals the original
    at 224 and slides the classifier over larger inputs instead of shrinking them to 7x7. Returns a
    ``FullyConvolutional`` in the model's mode; (N, C, H, W) -> (N, num_classes, h', w'). Models
    without such a head raise ``CnnzooError``.
    """
    features, layers, map_shape, size = _split(model, input_size)
    head = nn.Sequential(*_convolutional_head(layers, map_shape))
    converted = FullyConvolutional(features, head, size)
    return converted.train(model.training)


def _split(model: nn.Module, input_size):
    """(features copy, head layers, (C, h, w) entering the head, original input size or None)."""
    size = tuple(input_size) if input_size is not None else getattr(model, "input_size", None)
    if size is not None and len(size) != 3:
        raise CnnzooError(f"input_size must be (C, H, W), not {input_size!r}")

    if isinstance(model, LeNet | AlexNet):
        features = copy.deepcopy(model.features)
        layers = list(model.classifier)
        return features, layers, _sequential_map(features, size, layers), size
    if isinstance(model, VGG):
        features = copy.deepcopy(model.features)
        layers = list(model.classifier)
        if isinstance(model.avgpool, nn.AdaptiveAvgPool2d):
            out = model.avgpool.output_size
            height, width = (out, out) if isinstance(out, int) else out
            if height is None or width is None:
                raise CnnzooError("an adaptive pool with a free output axis cannot be dropped")
            if size is not None:
                _, got_h, got_w = sequential_output_shape(features.named_children(), size)
                if (got_h, got_w) != (height, width):
                    # the pool resamples there, so dropping it would change the outputs
                    raise CnnzooError(
                        f"at {size[1]}x{size[2]} the features end in a {got_h}x{got_w} map, not "
                        f"the {height}x{width} the classifier takes; convert a VGG used at "
                        f"{32 * height}x{32 * width}")
            return features, layers, (layers[0].in_features // (height * width), height, width), \
                size
        if not isinstance(model.avgpool, nn.Identity):
            raise CnnzooError(f"cannot convert a VGG whose avgpool is "
                              f"{type(model.avgpool).__name__}")
        return features, layers, _sequential_map(features, size, layers), size
    if isinstance(model, ResidualMNIST | InceptionMNIST):
        body = copy.deepcopy(model)
        del body.fc  # forward_features never reaches it
        features = _FeaturesOf(body)
        if size is not None:
            with torch.no_grad():
                probe = next(model.parameters()).new_zeros(1, *size)
                map_shape = tuple(features(probe).shape[1:])
        else:
            map_shape = _square_map(model.fc.in_features, _seed_channels(model))
        return features, [nn.Flatten(), model.fc], map_shape, size

    raise CnnzooError(f"{type(model).__name__} is not a model with a fixed fully connected head "
                      f"(LeNet, AlexNet, VGG, the MNIST nets of Liu Er's course); the zoo's "
                      f"other models pool globally and already take any input size")


def _sequential_map(features: nn.Sequential, size, layers) -> tuple[int, int, int]:
    if size is not None:
        return sequential_output_shape(features.named_children(), size)
    # the channel count does not depend on the spatial size: probe with any size that fits
    first_conv = next(m for m in features.modules() if isinstance(m, nn.Conv2d))
    channels = sequential_output_shape(features.named_children(),
                                       (first_conv.in_channels, 1024, 1024))[0]
    first_linear = next(m for m in layers if isinstance(m, nn.Linear))
    return _square_map(first_linear.in_features, channels)


def _seed_channels(model: nn.Module) -> int:
    if isinstance(model, ResidualMNIST):
        return model.conv2.out_channels
    block = model.incep2
    return sum(conv.out_channels for conv in (block.branch1x1, block.branch5x5_2,
                                              block.branch3x3_3, block.branch_pool))


def _square_map(in_features: int, channels: int) -> tuple[int, int, int]:
    side = math.isqrt(in_features // channels)
    if channels * side * side != in_features:
        raise CnnzooError(f"cannot tell the feature map of a {in_features}-input head with "
                          f"{channels} channels; pass input_size=(C, H, W)")
    return channels, side, side


def _convolutional_head(layers, map_shape) -> list[nn.Module]:
    """The head's layers as convolutions over a (C, h, w) map, weights copied."""
    channels, height, width = map_shape
    converted, first = [], True
    for layer in layers:
        if isinstance(layer, nn.Flatten | nn.Identity):
            if isinstance(layer, nn.Flatten) and not first:
                raise CnnzooError("a Flatten after the first linear layer cannot be converted")
            continue
        if isinstance(layer, nn.Linear):
            kernel = (height, width) if first else (1, 1)
            in_channels = channels if first else layer.in_features
            if in_channels * kernel[0] * kernel[1] != layer.in_features:
                raise CnnzooError(f"the first linear layer takes {layer.in_features} inputs, not "
                                  f"{channels}x{height}x{width}; pass the input_size it was built "
                                  f"for")
            conv = nn.Conv2d(in_channels, layer.out_features, kernel,
                             bias=layer.bias is not None, device=layer.weight.device,
                             dtype=layer.weight.dtype)
            with torch.no_grad():
                # flatten orders a map channel, row, column: the kernel's own layout
                conv.weight.copy_(layer.weight.reshape(conv.weight.shape))
                if layer.bias is not None:
                    conv.bias.copy_(layer.bias)
            converted.append(conv)
            first = False
        elif isinstance(layer, nn.BatchNorm1d) and not first:
            converted.append(_batch_norm_2d(layer))
        elif isinstance(layer, ScratchBatchNorm) and layer.num_dims == 2 and not first:
            norm = ScratchBatchNorm(layer.num_features, 4, layer.eps, layer.momentum).to(
                layer.weight.device, layer.weight.dtype)
            norm.load_state_dict(layer.state_dict())  # same names as nn.BatchNorm's
            converted.append(norm)
        elif isinstance(layer, RBFOutput) and not first:
            converted.append(RBFOutput2d(layer.prototypes.clone()))
        elif isinstance(layer, ELEMENTWISE):
            converted.append(copy.deepcopy(layer))
        else:
            raise CnnzooError(f"cannot turn a {type(layer).__name__} in the head into a "
                              f"convolutional layer")
    if first:
        raise CnnzooError("the head has no linear layer to convert")
    return converted


def _batch_norm_2d(layer: nn.BatchNorm1d) -> nn.BatchNorm2d:
    # per-feature statistics become per-channel ones: identical in eval mode; made in the
    # layer's dtype, so a float64 (or half) model's statistics are not rounded to float32
    tensor = layer.weight if layer.weight is not None else layer.running_mean
    where = {} if tensor is None else dict(device=tensor.device, dtype=tensor.dtype)
    norm = nn.BatchNorm2d(layer.num_features, layer.eps, layer.momentum, layer.affine,
                          layer.track_running_stats, **where)
    norm.load_state_dict(layer.state_dict())
    return norm
