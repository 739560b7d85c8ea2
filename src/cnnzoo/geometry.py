"""The shape arithmetic of convolution and pooling (seed 000: hout = (hin + 2p - k) / s + 1).

Pure functions of integers, used by models with a fixed-size head (to size their first linear
layer at construction, without Lazy layers), by the shape trace and by the minimum-input search.
"""

from __future__ import annotations

import math
from typing import Iterable

from torch import nn

from .errors import InputTooSmallError


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[-1])
    return int(value), int(value)


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a convolution or pooling window along one axis.

    ``floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1``, or the ceiling
    with ``ceil_mode`` (where, as in PyTorch, the last window must start inside the input or the
    left padding). A result below 1 means the input is too small for this layer.
    """
    if stride < 1 or kernel < 1 or dilation < 1 or padding < 0:
        raise ValueError(f"bad window: kernel={kernel} stride={stride} padding={padding} "
                         f"dilation={dilation}")
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = math.ceil(span / stride) + 1
        if (out - 1) * stride >= size + padding:  # PyTorch drops a window starting in the padding
            out -= 1
        return out
    return span // stride + 1


def window_of(module: nn.Module):
    """(kernel, stride, padding, dilation, ceil_mode) of a conv or pool layer, each a (h, w) pair;
    None for any other layer (adaptive pools included: their output size is fixed)."""
    if isinstance(module, nn.modules.conv._ConvNd) and module.weight.dim() == 4:
        return (_pair(module.kernel_size), _pair(module.stride), _pair(module.padding),
                _pair(module.dilation), False)
    if isinstance(module, nn.MaxPool2d):
        stride = module.stride if module.stride is not None else module.kernel_size
        return (_pair(module.kernel_size), _pair(stride), _pair(module.padding),
                _pair(module.dilation), bool(module.ceil_mode))
    if isinstance(module, nn.AvgPool2d):
        stride = module.stride if module.stride is not None else module.kernel_size
        return (_pair(module.kernel_size), _pair(stride), _pair(module.padding), (1, 1),
                bool(module.ceil_mode))
    return None


def layer_output_hw(module: nn.Module, hw: tuple[int, int]) -> tuple[int, int] | None:
    """Spatial output size of a conv or pool layer for an input of ``hw``; None for other layers.

    Padding given as a string ('same'/'valid') is resolved as PyTorch does.
    """
    window = window_of(module)
    if window is None:
        return None
    kernel, stride, padding, dilation, ceil_mode = window
    if isinstance(getattr(module, "padding", None), str):
        if module.padding == "same":
            return hw
        padding = (0, 0)
    return tuple(conv_output_size(size, k, s, p, d, ceil_mode)
                 for size, k, s, p, d in zip(hw, kernel, stride, padding, dilation))


def input_too_small(input_text: str, where: str, hw: tuple[int, int], out: tuple[int, int],
                    smallest: tuple[int, int, int] | None = None) -> InputTooSmallError:
    """The error for an input that a window layer shrinks to nothing: the layer (``where``), the
    map it got and what it leaves (0 where the formula gives less: a map has no negative size),
    and, where known, the smallest input that works."""
    left = "x".join(str(max(n, 0)) for n in out)
    message = f"input {input_text} is too small: at {where} the size {hw[0]}x{hw[1]} becomes {left}"
    if smallest is not None:
        message += f"; the smallest input that works is {'x'.join(map(str, smallest))}"
    return InputTooSmallError(message, smallest)


def sequential_output_shape(layers: Iterable[tuple[str, nn.Module]], input_size) -> tuple[int, ...]:
    """(C, H, W) after a plain chain of conv, pool, activation, norm and dropout layers.

    Used at construction by models whose classifier has a fixed input width. Raises
    ``InputTooSmallError`` naming the layer where the size falls below 1 and the smallest square
    input the chain takes.
    """
    layers = list(layers)
    shape, failure = _chain_shape(layers, tuple(input_size))
    if failure is None:
        return shape
    where, hw, out = failure
    raise input_too_small("x".join(map(str, input_size)), where, hw, out,
                          _smallest_square(layers, input_size[0]))


def _chain_shape(layers, input_size):
    """((C, H, W), None) after the chain, or (None, (where, hw, out)) at its first layer that
    leaves no map."""
    channels, height, width = input_size
    for name, module in layers:
        if isinstance(module, nn.Sequential):
            shape, failure = _chain_shape([(f"{name}.{n}", m) for n, m in module.named_children()],
                                          (channels, height, width))
            if failure is not None:
                return None, failure
            channels, height, width = shape
            continue
        out = layer_output_hw(module, (height, width))
        if out is not None:
            if min(out) < 1:
                return None, (f"layer {name} ({type(module).__name__})", (height, width), out)
            height, width = out
        if isinstance(module, nn.modules.conv._ConvNd):
            channels = module.out_channels
        elif isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            height, width = _pair(module.output_size)
    return (channels, height, width), None


def _smallest_square(layers, channels: int, limit: int = 8192) -> tuple[int, int, int] | None:
    """The smallest (C, S, S) the chain leaves a map for (a map only grows with its input), by
    doubling and then halving the interval; None beyond ``limit``."""
    def fits(size: int) -> bool:
        return _chain_shape(layers, (channels, size, size))[1] is None

    high = 1
    while not fits(high):
        high *= 2
        if high > limit:
            return None
    low = high // 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    return channels, high, high
