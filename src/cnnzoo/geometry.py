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


def sequential_output_shape(layers: Iterable[tuple[str, nn.Module]], input_size) -> tuple[int, ...]:
    """(C, H, W) after a plain chain of conv, pool, activation, norm and dropout layers.

    Used at construction by models whose classifier has a fixed input width. Raises
    ``InputTooSmallError`` naming the layer where the size falls below 1.
    """
    channels, height, width = input_size
    for name, module in layers:
        if isinstance(module, nn.Sequential):
            channels, height, width = sequential_output_shape(
                ((f"{name}.{n}", m) for n, m in module.named_children()),
                (channels, height, width))
            continue
        out = layer_output_hw(module, (height, width))
        if out is not None:
            if min(out) < 1:
                raise InputTooSmallError(
                    f"input {input_size[0]}x{input_size[1]}x{input_size[2]} is too small: at "
                    f"layer {name} ({type(module).__name__}) the size {height}x{width} becomes "
                    f"{out[0]}x{out[1]}")
            height, width = out
        if isinstance(module, nn.modules.conv._ConvNd):
            channels = module.out_channels
        elif isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            height, width = _pair(module.output_size)
    return channels, height, width
