"""The shape of every layer's output, in the order the layers run, and the smallest input a model
takes.

``trace_shapes`` is d2l's loop (``for layer in net: X = layer(X); print(...)``) made to work
for any model: it follows nested blocks, branches and functional code, because it records the
forward pass instead of replaying a flat list of layers. ``minimum_input_size`` searches for the
smallest square input whose feature maps never shrink below one pixel, with shape-only passes on
the meta device where it can.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import CnnzooError, InputTooSmallError, out_of_memory_as
from ..geometry import parse_size, whole_number, window_of
from .field import format_pair
from .recording import record_forward


@dataclass(frozen=True)
class ShapeRow:
    """One module call: where it sits in the model and the shapes it took and gave.

    ``kernel``, ``stride`` and ``padding`` are (h, w) pairs for convolution and pooling layers
    and None for the rest; shapes include the batch axis; a container that was never called
    itself (a ModuleList) has no shapes.
    """

    name: str
    class_name: str
    depth: int
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] | None = None

    @property
    def window(self) -> str:
        """``kernel 5, stride 1, padding 2`` for a conv or pool layer, '' otherwise."""
        if self.kernel is None:
            return ""
        return (f"kernel {format_pair(self.kernel)}, stride {format_pair(self.stride)}, "
                f"padding {format_pair(self.padding)}")


class ShapeTrace(list):
    """``trace_shapes``' rows (a list of ``ShapeRow``) that print as ``cnnzoo shapes`` does:
    ``str()`` and ``repr()`` are the indented table, and a notebook shows it as HTML."""

    def __init__(self, rows, input_shape: tuple[int, ...], name: str):
        super().__init__(rows)
        self.input_shape, self.name = tuple(input_shape), name

    def lines(self) -> list[str]:
        """The table: the input shape, then one line per call, blocks indented."""
        titles = [("  " * row.depth) + (f"{row.class_name} ({row.name})" if row.name
                                         else f"{self.name}: {row.class_name}") for row in self]
        width = max((len(title) for title in titles), default=0)
        lines = [f"input shape: {list(self.input_shape)}"]
        for title, row in zip(titles, self):
            if row.output_shape is None and row.input_shape is None:
                lines.append(f"{title:<{width}}  (container, not called itself)")
                continue
            line = f"{title:<{width}}  output shape: {_shape(row.output_shape)}"
            if row.window:
                line = f"{line:<{width + 36}}  {row.window}"
            lines.append(line.rstrip())
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        from .._html import html_table

        rows = [[("  " * row.depth) + (f"{row.class_name} ({row.name})" if row.name
                                        else f"{self.name}: {row.class_name}"),
                 _shape(row.output_shape), row.window] for row in self]
        return html_table(["layer", "output shape", "window"], rows, names=True,
                          caption=f"input shape {list(self.input_shape)}", inline=True)


def _shape(shape) -> str:
    return str(list(shape)) if shape is not None else "--"


def batched_size(input_size, batch: int = 1) -> tuple[int, int, int, int]:
    """(N, C, H, W) from (C, H, W) and ``batch``, or from (N, C, H, W) as given."""
    size = parse_size(input_size, (3, 4))
    if len(size) == 3:
        if not (whole_number(batch) and batch >= 1):
            raise CnnzooError(f"batch={batch!r}: give a whole number of at least 1")
        size = (batch, *size)
    return size


def input_too_large(size, device) -> str:
    """The one line for an input of ``size`` (a tuple) that ``device``'s memory cannot hold."""
    return (f"cannot make an input of {'x'.join(map(str, size))} on {device}: it does not fit "
            f"in memory; try a smaller input size")


def _model_dtype_device(model: nn.Module):
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return torch.get_default_dtype(), torch.device("cpu")


def trace_shapes(model: nn.Module, input_size, batch: int = 1) -> ShapeTrace:
    """Every module call's output shape, in call order, for a random input of ``input_size``:
    a list of ``ShapeRow`` that prints as a table (``ShapeTrace``).

    ``input_size`` is (C, H, W) (``batch`` is prepended) or (N, C, H, W). The model runs once in
    eval mode without gradients on its own device and dtype, and is left as it was. An input too
    small for a layer raises ``InputTooSmallError`` naming the layer and the smallest input that
    works.
    """
    size = batched_size(input_size, batch)
    dtype, device = _model_dtype_device(model)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        with out_of_memory_as(input_too_large(size, device)):
            x = torch.rand(size, dtype=dtype, device=device)
    try:
        recording = record_forward(model, (x,))
    except InputTooSmallError as error:
        raise with_minimum(error, model, size[1]) from error
    rows = []
    for call in recording.calls:
        window = window_of(call.module)
        kernel, stride, padding = window[:3] if window else (None, None, None)
        if window and isinstance(getattr(call.module, "padding", None), str):
            padding = None
        rows.append(ShapeRow(call.name, call.class_name, call.depth,
                             call.input_shapes[0] if call.input_shapes else None,
                             call.output_shapes[0] if call.output_shapes else None,
                             kernel, stride, padding))
    return ShapeTrace(rows, size, type(model).__name__)


def too_small_for(model: nn.Module, input_size) -> InputTooSmallError | None:
    """Why ``model`` cannot run on ``input_size`` (C, H, W) when the reason is a map that
    shrinks to nothing (the layer and the smallest input that works); None when it is not.
    For a forward pass that failed with the framework's own wording."""
    try:
        trace_shapes(model, input_size)
    except InputTooSmallError as error:
        return error
    except Exception:  # another failure: the caller's own message stands
        return None
    return None


def build_for_input(name: str, input_size=None, device=None) -> nn.Module:
    """Build the registered model ``name`` for an input of (C, H, W).

    A model with a fixed-size head is built for that size (its builder takes ``input_size``);
    any other gets ``in_channels`` when C differs from its default. An input too small raises
    ``InputTooSmallError`` naming the layer and the smallest input that works.
    """
    from ..models import get_model, model_info

    info = model_info(name)
    size = parse_size(info.default_input_size() if input_size is None else input_size)
    try:
        with torch.device(device) if device is not None else nullcontext():
            return get_model(name, **info.sized_for(size))
    except InputTooSmallError as error:
        raise with_minimum(error, name, size[0]) from error


def with_minimum(error: InputTooSmallError, model_or_name, in_channels: int
                 ) -> InputTooSmallError:
    """The same error with the smallest input that works added to its message, where the
    error does not name it already."""
    if error.smallest is not None:
        return error
    try:
        channels, height, width = minimum_input_size(model_or_name, in_channels)
    except Exception:  # the search is a courtesy: without it the error still says what failed
        return error
    return InputTooSmallError(f"{error}; the smallest input that works is "
                              f"{channels}x{height}x{width}", (channels, height, width))


def minimum_input_size(model_or_name, in_channels: int | None = None, *,
                       limit: int = 8192) -> tuple[int, int, int]:
    """The smallest square input (C, S, S) for which no feature map shrinks below one pixel.

    Given a registered name, the model is rebuilt for each size tried (so fixed-size heads fit);
    given a module, only its convolution and pooling geometry is checked (a fixed head built for
    another size still fails later, so build the model for the size you want). A binary search
    over S, each step one forward pass at batch 1 on the meta device (no memory, no arithmetic),
    falling back to real passes for code that the meta device cannot run.
    """
    if isinstance(model_or_name, str):
        from ..models import model_info

        channels = in_channels or model_info(model_or_name).default_input_size()[0]
        fits = _name_prober(model_or_name, channels)
    else:
        channels = in_channels or _guess_channels(model_or_name)
        fits = _module_prober(model_or_name, channels)
    high = 1
    while not fits(high):
        high *= 2
        if high > limit:
            raise CnnzooError(f"no input up to {limit}x{limit} fits this model")
    low = high // 2  # fits(low) is False, or low == 0
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle
    return channels, high, high


def _guess_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels
    raise CnnzooError("cannot tell the model's input channels; pass in_channels")


def _name_prober(name: str, channels: int):
    from ..models import get_model, model_info

    info = model_info(name)
    on_meta = [True]

    def fits(size: int) -> bool:
        kwargs = info.sized_for((channels, size, size))
        device = torch.device("meta") if on_meta[0] else torch.device("cpu")
        try:
            with torch.device(device):
                model = get_model(name, **kwargs)
            record_forward(model, (torch.empty(1, channels, size, size, device=device),))
        except InputTooSmallError:
            return False
        except Exception:
            if not on_meta[0]:
                raise
            on_meta[0] = False  # a builder or an operation the meta device cannot run
            return fits(size)
        return True

    return fits


def _module_prober(model: nn.Module, channels: int):
    dtype, device = _model_dtype_device(model)
    meta = {name: torch.empty_like(tensor, device="meta")
            for name, tensor in list(model.named_parameters()) + list(model.named_buffers())}
    on_meta = [True]  # until an operation turns out to be missing on the meta device

    def run(size: int, on_meta: bool) -> None:
        if on_meta:
            x = torch.empty(1, channels, size, size, dtype=dtype, device="meta")
            record_forward(model, (x,), substitute=meta)
        else:
            x = torch.rand(1, channels, size, size, dtype=dtype, device=device)
            record_forward(model, (x,))

    def fits(size: int) -> bool:
        try:
            run(size, on_meta[0])
        except InputTooSmallError:
            return False
        except CnnzooError:
            if not on_meta[0]:
                return True  # the feature maps fit; a head sized for another input failed
            try:  # the meta device may lack an operation this model uses
                run(size, False)
            except InputTooSmallError:
                return False
            except CnnzooError:
                return True
            on_meta[0] = False
        return True

    return fits
