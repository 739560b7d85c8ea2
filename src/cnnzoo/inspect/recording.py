"""One instrumented forward pass: every module call in order, with its shapes, receptive field
and multiply-accumulates.

Forward pre-hooks and hooks on every module record the calls in the order they happen (the order
torchinfo lists them), and a pre-hook refuses a convolution or pooling window that would shrink
the map below one pixel, naming the layer, before PyTorch fails with a message about padded
sizes. A ``TorchFunctionMode`` sees every tensor operation in between, so functional code
(``torch.cat`` of Inception branches, a residual ``x + y``, ``F.max_pool2d``) is followed too: it
carries each tensor's receptive field from inputs to outputs and counts the multiply-accumulates
of convolutions and matrix products in the module that runs them.

The model comes back as it was: hooks removed and every module's train/eval flag and every buffer
(BatchNorm running statistics, ``num_batches_tracked``) restored, even when the forward fails; the
global random state is left untouched.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass, field as dataclass_field

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakTensorKeyDictionary

from ..errors import CnnzooError
from ..geometry import _pair, conv_output_size, input_too_small, layer_output_hw, window_of
from .field import Field, adaptive_window

_CONV = {"conv1d", "conv2d", "conv3d"}
_CONV_TRANSPOSE = {"conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}
_MAX_POOL = {"max_pool2d", "_max_pool2d", "max_pool2d_with_indices"}
_AVG_POOL = {"avg_pool2d"}
_WINDOWS_2D = {"conv2d"} | _MAX_POOL | _AVG_POOL
_ADAPTIVE_POOL = {"adaptive_avg_pool2d", "adaptive_max_pool2d", "_adaptive_max_pool2d",
                  "adaptive_max_pool2d_with_indices"}
# matrix products whose first operand's last axis is the summed one
_MATMUL = {"matmul", "mm", "bmm", "__matmul__"}
_MATMUL_WITH_BIAS = {"addmm", "baddbmm"}  # (bias, a, b)


@dataclass
class Call:
    """One call of one module during the recorded pass (or a container that was never called
    itself but holds modules that were, listed so the tree reads as torchinfo shows it)."""

    module: nn.Module = dataclass_field(repr=False)
    name: str                      # qualified name, '' for the model itself
    class_name: str
    depth: int                     # 0 for the model, 1 for its children, ...
    depth_index: int = 0           # running count of rows at this depth (torchinfo's "1-3")
    executed: bool = False
    recursive: bool = False        # the module was already listed (called twice, or shared)
    input_shapes: list = dataclass_field(default_factory=list)   # every tensor argument
    output_shapes: list = dataclass_field(default_factory=list)  # every tensor in the output
    output_size: list = dataclass_field(default_factory=list)    # torchinfo's view: one tensor
    output_elem_bytes: int = 0
    field: Field | None = None     # receptive field of the (first) output
    macs: int = 0                  # conv and matmul multiply-accumulates run in its own forward

    @property
    def title(self) -> str:
        return self.name or self.class_name


@dataclass
class Recording:
    """What one instrumented forward pass saw.

    ``calls`` are in torchinfo's order; ``saved_bytes`` is the memory autograd kept for the
    backward pass (activations only, parameters excluded), or None when the pass ran without
    gradients.
    """

    calls: list[Call]
    input_shapes: list[tuple[int, ...]]
    output_shapes: list[tuple[int, ...]]
    saved_bytes: int | None


def torchinfo_size(value) -> tuple[list[int], int]:
    """The one shape torchinfo shows for a module's inputs or output, and its element size:
    the tensor itself, the first tensor of a list or tuple, the last value of a dict."""
    if value is None:
        return [], 0
    if isinstance(value, Tensor):
        return list(value.shape), value.element_size()
    if isinstance(value, dict):
        return torchinfo_size(list(value.values())[-1]) if value else ([], 0)
    if isinstance(value, (list, tuple)) and value:
        return torchinfo_size(value[0])
    return [], 0


def _tensors(value) -> list[Tensor]:
    return [leaf for leaf in tree_leaves(value) if isinstance(leaf, Tensor)]


def _shape_text(shape) -> str:
    return "x".join(str(size) for size in shape)


class _Recorder:
    def __init__(self, model: nn.Module):
        self.model = model
        self.names: dict[nn.Module, str] = {}
        self.parents: dict[nn.Module, nn.Module] = {}
        for name, module in model.named_modules():
            self.names[module] = name
            for child in module.children():
                self.parents.setdefault(child, module)
        self.calls: list[Call] = []
        self.stack: list[Call] = []
        self.seen: set[int] = set()
        self.fields = WeakTensorKeyDictionary()
        self.input_text = ""
        self.saved: dict[int, int] = {}
        self.weight_storages: set[int] = set()

    # --- module hooks -------------------------------------------------------------------------
    def depth(self, module: nn.Module) -> int:
        name = self.names[module]
        return name.count(".") + 1 if name else 0

    def pre_hook(self, module, args, kwargs):
        tensors = _tensors((args, kwargs))
        if tensors and window_of(module) is not None and tensors[0].dim() >= 3:
            hw = tuple(tensors[0].shape[-2:])
            out = layer_output_hw(module, hw)
            if min(out) < 1:
                self.too_small(f"layer {self.names[module]} ({self.window_text(module)})", hw,
                               out)
        call = Call(module, self.names[module], type(module).__name__, self.depth(module),
                    recursive=id(module) in self.seen,
                    input_shapes=[tuple(t.shape) for t in tensors])
        self.seen.add(id(module))
        self.calls.append(call)
        self.stack.append(call)

    def hook(self, module, args, kwargs, output):
        while self.stack:  # a child that raised inside a try in its parent leaves its call here
            call = self.stack.pop()
            if call.module is module:
                break
        else:
            return
        call.executed = True
        outputs = _tensors(output)
        call.output_shapes = [tuple(t.shape) for t in outputs]
        call.output_size, call.output_elem_bytes = torchinfo_size(output)
        call.field = self.fields.get(outputs[0]) if outputs else None

    @staticmethod
    def window_text(module: nn.Module) -> str:
        kernel, stride, padding, _, _ = window_of(module)
        return (f"{type(module).__name__}, kernel {kernel[0]}x{kernel[1]}, "
                f"stride {stride[0]}x{stride[1]}, padding {padding[0]}x{padding[1]}")

    def too_small(self, where: str, hw, out):
        raise input_too_small(self.input_text, where, hw, out)

    def current(self) -> Call | None:
        return self.stack[-1] if self.stack else None

    # --- tensor operations --------------------------------------------------------------------
    def before_op(self, name: str, args, kwargs):
        """Refuse a functional window that the map is too small for (modules were checked by
        their pre-hook already; this catches ``F.max_pool2d(x, 3)`` inside a forward)."""
        if name not in _WINDOWS_2D:
            return
        params = self.window_args(name, args, kwargs)
        if params is None:
            return
        x, kernel, stride, padding, dilation, ceil_mode = params
        if x.dim() < 3:
            return
        hw = tuple(x.shape[-2:])
        if isinstance(padding, str):
            if padding == "same":
                return
            padding = (0, 0)
        out = tuple(conv_output_size(size, k, s, p, d, ceil_mode)
                    for size, k, s, p, d in zip(hw, kernel, stride, padding, dilation))
        if min(out) < 1:
            call = self.current()
            where = (f"{call.title} ({call.class_name})" if call else "the model")
            self.too_small(f"{where}, in {name.strip('_')} with kernel {kernel[0]}x{kernel[1]}",
                           hw, out)

    @staticmethod
    def window_args(name: str, args, kwargs):
        """(input, kernel, stride, padding, dilation, ceil_mode) of a functional 2-D window."""
        if name in _CONV:
            names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
            defaults = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
        elif name in _MAX_POOL:
            names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")
            defaults = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False}
        else:
            names = ("input", "kernel_size", "stride", "padding", "ceil_mode")
            defaults = {"stride": None, "padding": 0, "ceil_mode": False}
        values = dict(defaults)
        values.update(zip(names, args))
        values.update((k, v) for k, v in kwargs.items() if k in names)
        x = values.get("input")
        if not isinstance(x, Tensor):
            return None
        if name in _CONV:
            weight = values.get("weight")
            if not isinstance(weight, Tensor) or weight.dim() != 4:
                return None
            kernel = tuple(weight.shape[-2:])
        else:
            kernel = _pair(values["kernel_size"])
        stride = values["stride"]
        stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) \
            else _pair(stride)
        padding = values["padding"]
        padding = padding if isinstance(padding, str) else _pair(padding)
        dilation = _pair(values.get("dilation", 1))
        return x, kernel, stride, padding, dilation, bool(values.get("ceil_mode") or False)

    def after_op(self, name: str, args, kwargs, result):
        outputs = _tensors(result)
        if not outputs:
            return
        macs = self.macs_of(name, args, kwargs, outputs[0])
        if macs:
            call = self.current()
            if call is not None:
                call.macs += macs
        tagged = [t for t in _tensors((args, kwargs)) if t in self.fields]
        if not tagged:
            return
        source = tagged[0]
        fields = Field.widest(self.fields[t] for t in tagged)
        if name in _WINDOWS_2D:
            params = self.window_args(name, args, kwargs)
            if params is not None and params[0] in self.fields:
                _, kernel, stride, _, dilation, _ = params
                fields = self.fields[params[0]].after_window(kernel, stride, dilation)
        elif name in _ADAPTIVE_POOL and source.dim() >= 3 and outputs[0].dim() >= 3:
            windows = [adaptive_window(i, o)
                       for i, o in zip(source.shape[-2:], outputs[0].shape[-2:])]
            fields = self.fields[source].after_window(*zip(*windows))
        elif source.dim() == 4 and (outputs[0].dim() < 4 or (
                tuple(outputs[0].shape[-2:]) == (1, 1) and tuple(source.shape[-2:]) != (1, 1))):
            # flatten or global reduction: each output now depends on the whole map
            fields = fields.covering(tuple(source.shape[-2:]))
        for tensor in outputs:
            self.fields[tensor] = fields

    @staticmethod
    def macs_of(name: str, args, kwargs, out: Tensor) -> int:
        if name in _CONV:
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            return out.numel() * math.prod(weight.shape[1:])
        if name in _CONV_TRANSPOSE:
            x = args[0] if args else kwargs.get("input")
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            return x.numel() * math.prod(weight.shape[1:])
        if name == "linear":
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            return out.numel() * weight.shape[-1]
        if name in _MATMUL and len(args) >= 2 and isinstance(args[0], Tensor):
            return out.numel() * args[0].shape[-1]
        if name in _MATMUL_WITH_BIAS and len(args) >= 3 and isinstance(args[1], Tensor):
            return out.numel() * args[1].shape[-1]
        return 0

    # --- saved tensors ------------------------------------------------------------------------
    def pack(self, tensor: Tensor):
        # keyed by the storage object itself (not its address), which also works on meta
        storage = tensor.untyped_storage()
        if storage._cdata not in self.weight_storages:
            self.saved[storage._cdata] = storage.nbytes()
        return tensor

    # --- the tree as torchinfo lists it -------------------------------------------------------
    def rows(self) -> list[Call]:
        """The calls plus the containers that were never called themselves (a ModuleList, a
        Sequential whose children the parent calls one by one), each inserted before the first
        call below it, and the running index of every row within its depth."""
        listed = {id(call.module) for call in self.calls}
        rows: list[Call] = []
        current: dict[int, nn.Module] = {}
        for call in self.calls:
            ancestors = {}
            module = self.parents.get(call.module)
            while module is not None and self.depth(module) > 0:
                ancestors[self.depth(module)] = module
                module = self.parents.get(module)
            for depth in range(1, call.depth):
                ancestor = ancestors.get(depth)
                if ancestor is None or current.get(depth) is ancestor:
                    continue
                rows.append(Call(ancestor, self.names[ancestor], type(ancestor).__name__, depth,
                                 recursive=id(ancestor) in listed))
                listed.add(id(ancestor))
                current[depth] = ancestor
            current[call.depth] = call.module
            deeper = call.depth + 1
            while deeper in current:
                del current[deeper]
                deeper += 1
            rows.append(call)
        counts: dict[int, int] = {}
        for row in rows:
            counts[row.depth] = counts.get(row.depth, 0) + 1
            row.depth_index = counts[row.depth]
        return rows


class _Observer(TorchFunctionMode):
    def __init__(self, recorder: _Recorder):
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        self.recorder.before_op(name, args, kwargs)
        result = func(*args, **kwargs)
        if name != "__get__":  # attribute reads (.shape, .grad) make no new feature maps
            self.recorder.after_op(name, args, kwargs, result)
        return result


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def record_forward(model: nn.Module, inputs: tuple, *, mode: str = "eval", grad: bool = False,
                   substitute: dict[str, Tensor] | None = None) -> Recording:
    """Run ``model(*inputs)`` once, instrumented, and return what every module call did.

    ``mode`` ('eval' or 'train') is set for the pass and each module's own flag restored after;
    buffers are restored too, so a training-mode pass leaves BatchNorm statistics as they were.
    With ``grad`` the pass builds the autograd graph and measures what it saves for backward;
    otherwise it runs under ``no_grad``. ``substitute`` maps parameter and buffer names to other
    tensors (meta tensors, for a shape-only pass) through ``torch.func.functional_call``.
    A layer too small for its input raises ``InputTooSmallError``; any other failure raises a
    one-line ``CnnzooError`` naming the layer that failed and the shapes it was given.
    """
    if mode not in ("eval", "train"):
        raise CnnzooError(f"mode must be 'eval' or 'train', not {mode!r}")
    recorder = _Recorder(model)
    tensors = _tensors(inputs)
    if tensors:
        recorder.input_text = _shape_text(tensors[0].shape[1:] if tensors[0].dim() == 4
                                          else tensors[0].shape)
    for tensor in tensors:
        recorder.fields[tensor] = Field()
    weights = substitute.values() if substitute is not None else (
        list(model.parameters()) + list(model.buffers()))
    recorder.weight_storages = {t.untyped_storage()._cdata for t in weights}

    flags = [(module, module.training) for module in model.modules()]
    saved_buffers = []
    if substitute is None:
        for module in model.modules():
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    saved_buffers.append((module, name, buffer, buffer.detach().clone()))
    handles = []
    devices = sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})
    try:
        for module in recorder.names:
            handles.append(module.register_forward_pre_hook(recorder.pre_hook, with_kwargs=True))
            handles.append(module.register_forward_hook(recorder.hook, with_kwargs=True))
        model.train(mode == "train")
        with ExitStack() as stack:
            stack.enter_context(torch.random.fork_rng(devices=devices))
            stack.enter_context(torch.enable_grad() if grad else torch.no_grad())
            if grad:
                stack.enter_context(torch.autograd.graph.saved_tensors_hooks(
                    recorder.pack, lambda tensor: tensor))
            stack.enter_context(_Observer(recorder))
            if substitute is None:
                output = model(*inputs)
            else:
                output = torch.func.functional_call(model, substitute, tuple(inputs))
        output_shapes = [tuple(t.shape) for t in _tensors(output)]
        del output
    except CnnzooError:
        raise
    except Exception as error:
        call = recorder.current()
        if call is None:
            raise
        where = (f"layer {call.name} ({call.class_name})" if call.name
                 else f"{call.class_name}'s own forward")
        given = ", ".join(str(list(shape)) for shape in call.input_shapes) or "no tensors"
        hint = ""
        if mode == "train" and "more than 1 value per channel" in str(error):
            hint = ("; batch normalisation in training mode needs a batch of 2 or more (or use "
                    "eval mode)")
        raise CnnzooError(f"forward pass failed in {where}, given input {given}: "
                          f"{_first_line(error)}{hint}") from error
    finally:
        for handle in handles:
            handle.remove()
        for module, training in flags:
            module.training = training
        with torch.no_grad():
            for module, name, buffer, copy in saved_buffers:
                module._buffers[name] = buffer
                buffer.copy_(copy)
    return Recording(recorder.rows(), [tuple(t.shape) for t in tensors], output_shapes,
                     sum(recorder.saved.values()) if grad else None)
