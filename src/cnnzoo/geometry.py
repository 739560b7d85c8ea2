"""The shape arithmetic of convolution and pooling (hout = (hin + 2p - k) / s + 1, as the
study notes on LeNet-5 and AlexNet write it), and the one reading of a size a user gives.

Pure functions of integers, used by models with a fixed-size head (to size their first linear
layer at construction, without Lazy layers), by the shape trace and by the minimum-input search.
``parse_size`` reads every size cnnzoo is given (an input size, an image size, a resize), from
Python or, through ``parse_size_text``, from the command line. Torch is imported only by the
functions that look at layers, so the command line's argument checks run without it.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Iterable

from .errors import InputTooSmallError, SizeError

if TYPE_CHECKING:
    from torch import nn

# the names of a size's axes, by how many it has
AXES = {2: "H, W", 3: "C, H, W", 4: "N, C, H, W"}
EXAMPLES = {2: (224, 224), 3: (3, 224, 224), 4: (8, 3, 224, 224)}


def whole_number(value) -> bool:
    """Whether ``value`` is an int (numpy's included), not a bool, a float or a string."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def parse_size(value, lengths=(3,), *, name: str = "input_size", square: bool = False
               ) -> tuple[int, ...]:
    """``value`` as a tuple of whole numbers of at least 1, with one of ``lengths`` axes
    (``None``: any number of them): (C, H, W) for ``lengths=(3,)``, (H, W) or (C, H, W) for
    ``(2, 3)``. With ``square``, one whole number ``S`` is the square ``(S, S)``.

    Anything else is one ``SizeError`` line (a ``CnnzooError`` and a ``ValueError``) that
    names ``name`` (the parameter, or the flag where the command line passes one) and shows
    the expected form.
    """
    if square and whole_number(value):
        value = (value, value)
    parts = tuple(value) if isinstance(value, (tuple, list)) else None
    shown = f"{name}{' ' if name.startswith('--') else '='}{value!r}"
    return _checked(parts, lengths, shown, text=False, square=square)


def parse_size_text(text: str, lengths=(3,), *, name: str = "--input-size") -> tuple[int, ...]:
    """A size written as the command line takes it, ``3,224,224``: ``parse_size`` of its
    comma-separated numbers, its errors quoting the text as typed."""
    parts = tuple(part.strip() for part in text.split(","))
    return _checked(parts, lengths, f"{name} {text!r}", text=True)


def _checked(parts, lengths, shown: str, *, text: bool, square: bool = False
             ) -> tuple[int, ...]:
    counts = tuple(lengths) if lengths else ()
    if counts:
        forms = [",".join(AXES[n].split(", ")) if text else f"({AXES[n]})" for n in counts]
        if square:
            forms.insert(0, "S")
        form = ", ".join(forms[:-1]) + " or " + forms[-1] if len(forms) > 1 else forms[0]
        example = EXAMPLES[3 if 3 in counts else counts[0]]
        example = ",".join(map(str, example)) if text else str(example)
        give = f"give {form}, e.g. {example}"
    else:
        give = "give whole numbers, batch first"
    if parts is None:
        raise SizeError(f"{shown} is not a size; {give}")
    if counts and len(parts) not in counts:
        raise SizeError(f"{shown}: give {' or '.join(map(str, counts))} numbers, not "
                          f"{len(parts)}; {give}")
    if not parts:
        raise SizeError(f"{shown} is empty; {give}")
    values = []
    for part in parts:
        if text:
            try:  # "²" passes str.isdigit but not int(), so ask int() itself
                part = int(part)
            except ValueError as error:
                raise SizeError(f"{shown}: {part!r} is not a whole number; {give}") from error
        elif not whole_number(part):
            raise SizeError(f"{shown}: {part!r} is not a whole number; {give}")
        values.append(int(part))
    if min(values) < 1:
        raise SizeError(f"{shown}: every size must be 1 or more; {give}")
    return tuple(values)


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
    from torch import nn

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
    from torch import nn

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
