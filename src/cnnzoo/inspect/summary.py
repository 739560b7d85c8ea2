"""A torchinfo-compatible model summary, and what torchinfo leaves out.

``summary(model, input_size=(10, 1, 32, 32))`` prints the table of the Chinese study notes on
LeNet-5 and AlexNet, number for number (torchinfo 1.8.0's conventions: parameters per layer,
mult-adds as weight elements times output positions, the forward/backward size as twice the outputs
of layers with parameters). Beyond that it knows each layer's kernel, stride and padding, the
receptive field and jump of every output, MACs and FLOPs of convolutions and matrix products (what
``FlopCounterMode`` counts), each layer's share, trainable and frozen parameters with shared ones
counted once, and what training would hold in memory: parameters, gradients, optimizer state and the
activations autograd saves.

The model is never moved or changed: a summary on another device or dtype runs on a copy, and
modes, buffers, hooks and the random state are as they were afterwards.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from dataclasses import asdict, dataclass, field as dataclass_field

import torch
from torch import nn

from ..errors import CnnzooError, InputTooSmallError, out_of_memory_as, refused_memory
from ..geometry import parse_size, window_of
from .recording import Call, _first_line, record_forward
from .shapes import input_too_large, with_minimum
from .table import (COLUMNS, DEFAULT_COLUMNS, render_csv, render_markdown, render_table,
                    summary_lines)

OPTIMIZERS = {"sgd": 0, "momentum": 1, "adam": 2}  # optimizer state per trainable parameter


@dataclass
class LayerRow:
    """One row of the summary: one module call (or a container listed for its children).

    ``num_params``, ``trainable_params`` and ``weights`` (parameters other than biases) count the
    module with everything inside it; ``macs`` only what runs in its own forward, outside its
    children; ``mult_adds`` is torchinfo's figure for the call. ``receptive_field`` and ``jump``
    are (h, w) pairs in input pixels; shapes include the batch axis.
    """

    name: str
    class_name: str
    depth: int
    depth_index: int
    is_leaf: bool
    executed: bool
    recursive: bool
    input_size: list[int]
    output_size: list[int]
    num_params: int
    trainable_params: int
    weights: int
    macs: int
    mult_adds: int
    output_bytes: int
    kernel_size: object = None
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] | str | None = None
    receptive_field: tuple[int, int] | None = None
    jump: tuple[int, int] | None = None


@dataclass
class TrainingMemory:
    """Bytes one training step holds, estimated: parameters, their gradients, the optimizer's
    state (SGD none, momentum one buffer, Adam two per trainable parameter) and the activations
    autograd saves for the backward pass; ``measured_peak`` where the device can report it."""

    optimizer: str
    dtype: str
    parameters: int
    gradients: int
    optimizer_state: int
    activations: int
    measured_peak: int | None = None
    measured_note: str = ""

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer_state + self.activations


@dataclass(repr=False)
class ModelSummary:
    """What ``summary`` found. ``str()`` and ``repr()`` are the torchinfo-style table;
    ``table(fmt)`` renders it as 'table', 'markdown', 'json' or 'csv'; ``html()`` as an HTML
    table (what a notebook shows); ``details()`` adds MACs, FLOPs and memory."""

    model_name: str
    input_shapes: list[tuple[int, ...]]
    dtype: str
    device: str
    mode: str
    layers: list[LayerRow]
    total_params: int
    trainable_params: int
    total_mult_adds: int
    total_macs: int
    input_bytes: int
    forward_backward_bytes: int
    params_bytes: int
    memory: TrainingMemory
    depth: int = 3
    columns: tuple[str, ...] = DEFAULT_COLUMNS
    notes: list[str] = dataclass_field(default_factory=list)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def total_flops(self) -> int:
        return 2 * self.total_macs

    @property
    def estimated_total_bytes(self) -> int:
        return self.input_bytes + self.forward_backward_bytes + self.params_bytes

    @property
    def batch_size(self) -> int:
        return self.input_shapes[0][0] if self.input_shapes and self.input_shapes[0] else 1

    def table(self, fmt: str = "table", columns=None, depth: int | None = None) -> str:
        columns = _check_columns(self.columns if columns is None else columns)
        depth = self.depth if depth is None else depth
        if fmt == "table":
            return render_table(self, columns, depth)
        if fmt == "markdown":
            return render_markdown(self, columns, depth)
        if fmt == "csv":
            return render_csv(self, columns, depth)
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        raise CnnzooError(f"unknown format {fmt!r}; use table, markdown, json or csv")

    def details(self) -> str:
        """MACs, FLOPs, parameters split and training memory, one line each."""
        lines = [f"{label}: {value}" for label, value in summary_lines(self)]
        return "\n".join(lines + [f"Note: {note}" for note in self.notes])

    def to_dict(self) -> dict:
        """Everything as plain numbers, strings and lists (JSON-ready); sizes in bytes."""
        return {
            "model": self.model_name,
            "input_shapes": [list(s) for s in self.input_shapes],
            "dtype": self.dtype,
            "device": self.device,
            "mode": self.mode,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "total_mult_adds": self.total_mult_adds,
            "total_macs": self.total_macs,
            "total_flops": self.total_flops,
            "input_bytes": self.input_bytes,
            "forward_backward_bytes": self.forward_backward_bytes,
            "params_bytes": self.params_bytes,
            "estimated_total_bytes": self.estimated_total_bytes,
            "training_memory": {**asdict(self.memory), "total": self.memory.total},
            "notes": list(self.notes),
            "layers": [_row_dict(row) for row in self.layers],
        }

    def __str__(self) -> str:
        return self.table()

    __repr__ = __str__

    def html(self, depth: int | None = None, *, inline: bool = True) -> str:
        """The table and its totals as HTML (two strings), each layer's name indented by its
        depth; ``inline`` styles each cell itself (a notebook) instead of by class (a page)."""
        import csv
        import io

        from .._html import escape, html_table
        from .table import COLUMNS

        lines = list(csv.reader(io.StringIO(self.table("csv", depth=depth))))
        header, rows = lines[0], lines[1:]
        titles = ["layer"] + [COLUMNS[name].title for name in header[4:]]
        body = []
        for row in rows:
            name, class_name, level = row[0], row[1], int(row[2])
            label = ("  " * max(level - 1, 0)) + (f"{name} ({class_name})" if name
                                                  else class_name)
            values = [f"{int(v):,}" if v.isdigit() else v for v in row[4:]]
            body.append([label] + [v if v != "" else "--" for v in values])
        table = html_table(titles, body, numeric=range(1, len(titles)), names=True,
                           inline=inline)
        totals = [("Mult-adds (torchinfo's count)", f"{self.total_mult_adds:,}")]
        totals += summary_lines(self)
        items = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in totals)
        return table, f'<ul class="totals">{items}</ul>'

    def _repr_html_(self) -> str:
        return "".join(self.html())


def _row_dict(row: LayerRow) -> dict:
    data = asdict(row)
    for key, value in data.items():
        if isinstance(value, tuple):
            data[key] = list(value)
    if data["kernel_size"] is not None and not isinstance(data["kernel_size"], (int, list)):
        data["kernel_size"] = str(data["kernel_size"])
    return data


def _check_columns(columns) -> tuple[str, ...]:
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",") if c.strip()]
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown or not columns:
        raise CnnzooError(f"unknown column {', '.join(unknown) or '(none given)'}; choose from "
                          f"{', '.join(COLUMNS)}")
    return tuple(columns)


def _torchinfo_mult_adds(module: nn.Module, class_name: str, output_size: list[int]) -> int:
    """torchinfo 1.8's count for one call: a convolution's weight and bias elements times the
    output positions (batch included); any other layer's times the batch only."""
    total = 0
    for name, param in module.named_parameters():
        if name in ("weight", "bias"):
            if "Conv" in class_name:
                total += param.numel() * math.prod(output_size[:1] + output_size[2:])
            elif output_size:  # torchinfo itself fails on a layer with weights and no output
                total += output_size[0] * param.numel()
        elif "weight" in name or "bias" in name:
            total += math.prod(output_size[:2]) * param.numel()
    return total


def _layer_rows(calls: list[Call]) -> list[LayerRow]:
    counts: dict[int, tuple[int, int, int]] = {}
    rows = []
    for call in calls:
        module = call.module
        if id(module) not in counts:
            params = dict(module.named_parameters())
            counts[id(module)] = (
                sum(p.numel() for p in params.values()),
                sum(p.numel() for p in params.values() if p.requires_grad),
                sum(p.numel() for n, p in params.items() if not n.endswith("bias")))
        num_params, trainable, weights = counts[id(module)]
        is_leaf = not any(True for _ in module.children())
        window = window_of(module)
        kernel, stride, padding = window[:3] if window else (None, None, None)
        if window and isinstance(getattr(module, "padding", None), str):
            padding = module.padding
        kernel_size = getattr(module, "kernel_size", None)
        rows.append(LayerRow(
            name=call.name, class_name=call.class_name, depth=call.depth,
            depth_index=call.depth_index, is_leaf=is_leaf,
            executed=call.executed, recursive=call.recursive,
            input_size=list(call.input_shapes[0]) if call.input_shapes else [],
            output_size=list(call.output_size), num_params=num_params,
            trainable_params=trainable, weights=weights, macs=call.macs,
            mult_adds=(_torchinfo_mult_adds(module, call.class_name, call.output_size)
                       if call.executed and is_leaf else 0),
            output_bytes=call.output_elem_bytes * math.prod(call.output_size),
            kernel_size=list(kernel_size) if isinstance(kernel_size, tuple) else kernel_size,
            kernel=kernel, stride=stride, padding=padding,
            receptive_field=call.field.size if call.field else None,
            jump=call.field.jump if call.field else None))
    return rows


def _full_size(input_size) -> tuple[int, ...]:
    """The input shape with its batch axis: (C, H, W) gets a batch of 1, any other length is
    taken as the full shape, batch first (as torchinfo's ``input_size``)."""
    size = parse_size(input_size, None)
    return (1, *size) if len(size) == 3 else size


def _device(device) -> torch.device:
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise CnnzooError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CnnzooError(f"device {device} asked for, but this machine has no CUDA device")
    return device


def _floating(model: nn.Module):
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor
    return None


def summary(model: nn.Module, input_size=None, input_data=None, depth: int = 3,
            columns=DEFAULT_COLUMNS, dtype: torch.dtype | None = None, device=None,
            mode: str = "eval", optimizer: str = "sgd", measure: bool = False) -> ModelSummary:
    """Summarize ``model`` on one forward pass, torchinfo-style, plus fields, MACs and memory.

    Give ``input_size`` as (N, C, H, W) (or (C, H, W) for batch 1; the input is ``torch.rand``)
    or ``input_data`` as a tensor or tuple of tensors. ``depth`` and ``columns`` (names from
    ``cnnzoo.inspect.table.COLUMNS``) shape the printed table; ``mode`` is 'eval' (as torchinfo)
    or 'train'. With ``device`` or ``dtype`` unlike the model's, the summary runs on a copy of the
    model moved there; the model itself never moves. ``optimizer`` ('sgd', 'momentum', 'adam')
    sizes the optimizer state in the training-memory estimate, and ``measure`` runs two real
    training steps on a copy to report the peak where the device can (CUDA).
    """
    columns = _check_columns(columns)
    if optimizer not in OPTIMIZERS:
        raise CnnzooError(f"unknown optimizer {optimizer!r}; use {', '.join(OPTIMIZERS)}")
    if not isinstance(depth, int) or depth < 0:
        raise CnnzooError(f"depth must be a whole number, 0 or more, not {depth!r}")
    if (input_size is None) == (input_data is None):
        raise CnnzooError("give exactly one of input_size and input_data")
    if input_data is not None:
        given = (input_data,) if isinstance(input_data, torch.Tensor) else input_data
        if not (isinstance(given, (tuple, list)) and given and isinstance(given[0], torch.Tensor)):
            raise CnnzooError("input_data must be a tensor or a tuple of tensors, the first a "
                              "tensor")
        empty = [tuple(t.shape) for t in given if isinstance(t, torch.Tensor) and not t.numel()]
        if empty:
            raise CnnzooError(f"input_data of shape {empty[0]} holds no values; every axis "
                              f"needs a size of 1 or more")

    reference = _floating(model)
    model_dtype = reference.dtype if reference is not None else torch.get_default_dtype()
    model_device = reference.device if reference is not None else torch.device("cpu")
    target_device = _device(device) if device is not None else model_device
    if input_data is not None and device is None:
        first = input_data if isinstance(input_data, torch.Tensor) else input_data[0]
        target_device = first.device
    target_dtype = dtype or model_dtype
    notes = []
    work = model
    same_device = target_device.type == model_device.type and (
        None in (target_device.index, model_device.index)
        or target_device.index == model_device.index)
    if not same_device or target_dtype != model_dtype:
        # never move the caller's model: summarize a copy where it was asked to run
        work = copy.deepcopy(model).to(device=target_device, dtype=target_dtype)
        notes.append(f"summarized a copy of the model on {target_device}, {target_dtype} "
                     f"(the model itself stays on {model_device}, {model_dtype})")

    if input_data is not None:
        inputs = (input_data,) if isinstance(input_data, torch.Tensor) else tuple(input_data)
        inputs = tuple(t.to(target_device) if isinstance(t, torch.Tensor) else t
                       for t in inputs)
        if dtype is not None:
            inputs = tuple(t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point()
                           else t for t in inputs)
    else:
        size = _full_size(input_size)
        devices = [target_device.index or 0] if target_device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            with out_of_memory_as(input_too_large(size, target_device)):
                inputs = (torch.rand(size, device=target_device, dtype=target_dtype),)

    try:
        recording = record_forward(work, inputs, mode=mode)
    except InputTooSmallError as error:
        first = inputs[0]
        raise with_minimum(error, work, first.shape[1]) from error
    rows = _layer_rows(recording.calls)

    parameters = list(work.parameters())  # each shared parameter once
    trainable = [p for p in parameters if p.requires_grad]
    leaf_outputs = sum(row.output_bytes for row in rows
                       if row.is_leaf and row.num_params > 0 and row.executed)
    tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
    params_bytes = sum(p.numel() * p.element_size() for p in parameters)
    gradient_bytes = sum(p.numel() * p.element_size() for p in trainable)
    activations, note = _saved_activation_bytes(work, inputs)
    if note:
        notes.append(note)
    memory = TrainingMemory(
        optimizer=optimizer, dtype=str(target_dtype).replace("torch.", ""),
        parameters=params_bytes, gradients=gradient_bytes,
        optimizer_state=OPTIMIZERS[optimizer] * gradient_bytes, activations=activations)
    if measure:
        memory.measured_peak, memory.measured_note = _measure_peak(work, inputs, optimizer)

    return ModelSummary(
        model_name=type(model).__name__,
        input_shapes=[tuple(t.shape) for t in tensors],
        dtype=memory.dtype, device=str(target_device), mode=mode, layers=rows,
        total_params=sum(p.numel() for p in parameters),
        trainable_params=sum(p.numel() for p in trainable),
        total_mult_adds=sum(row.mult_adds for row in rows if row.is_leaf),
        total_macs=sum(row.macs for row in rows),
        input_bytes=sum(sys.getsizeof(t.untyped_storage()) for t in tensors),
        forward_backward_bytes=2 * leaf_outputs,
        params_bytes=params_bytes, memory=memory, depth=depth, columns=columns, notes=notes)


def _saved_activation_bytes(model: nn.Module, inputs: tuple) -> tuple[int, str]:
    """What autograd keeps for the backward pass of a training-mode forward, parameters and
    buffers excluded, and a note when it had to be counted otherwise. Counted on the meta device
    (no memory, no arithmetic) where the model runs there, else with a real pass (its buffers are
    restored afterwards); in eval mode when training mode cannot run on this input (BatchNorm
    over a single value, at batch 1)."""
    meta = {name: torch.empty_like(t, device="meta").requires_grad_(t.requires_grad)
            for name, t in list(model.named_parameters()) + list(model.named_buffers())}
    meta_inputs = tuple(torch.empty_like(t, device="meta") if isinstance(t, torch.Tensor) else t
                        for t in inputs)
    failure = None
    for mode in ("train", "eval"):
        for substitute, args in ((meta, meta_inputs), (None, inputs)):
            try:
                saved = record_forward(model, args, mode=mode, grad=True,
                                       substitute=substitute).saved_bytes
            except CnnzooError as error:
                failure = failure or error
                continue
            note = "" if mode == "train" else (
                f"saved activations counted in eval mode: the training-mode pass failed "
                f"({failure})")
            return saved, note
    return 0, f"saved activations could not be counted: {failure}"


def _measure_peak(model: nn.Module, inputs: tuple, optimizer: str) -> tuple[int | None, str]:
    """Peak memory of two training steps on a copy of the model, where the device reports it;
    a step that fails (BatchNorm over a single value at batch 1, memory running out) leaves a
    note instead, as the estimate stands without it."""
    tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
    device = tensors[0].device if tensors else torch.device("cpu")
    if device.type != "cuda":
        return None, (f"cannot be measured on {device.type}: PyTorch reports peak memory only "
                      f"for CUDA devices")
    torch.cuda.synchronize(device)
    start = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    try:
        with torch.random.fork_rng(devices=[device.index or 0]):
            stepped = _two_training_steps(model, inputs, optimizer)
            torch.cuda.synchronize(device)
    except Exception as error:
        why = ("they do not fit in memory" if refused_memory(error)
               else f"they failed ({_first_line(error)})")
        return None, f"cannot be measured: two {optimizer} training steps on {device}: {why}"
    finally:
        torch.cuda.empty_cache()
    if not stepped:
        return None, "cannot be measured: the model's forward returns no tensor"
    return (torch.cuda.max_memory_allocated(device) - start,
            f"torch.cuda.max_memory_allocated over two {optimizer} steps")


def _two_training_steps(model: nn.Module, inputs: tuple, optimizer: str) -> bool:
    """Two training steps of a copy of ``model`` on ``inputs``; False where its forward returns
    no tensor to take a gradient of."""
    trainee = copy.deepcopy(model).train()
    params = [p for p in trainee.parameters() if p.requires_grad]
    if optimizer == "adam":
        step = torch.optim.Adam(params)
    else:
        step = torch.optim.SGD(params, lr=0.01, momentum=0.9 if optimizer == "momentum"
                               else 0.0)
    for _ in range(2):  # the second step holds the optimizer state the first one created
        step.zero_grad(set_to_none=True)
        outputs = trainee(*inputs)
        outputs = [t for t in (outputs if isinstance(outputs, (tuple, list))
                               else [outputs]) if isinstance(t, torch.Tensor)]
        if not outputs:
            return False
        sum(t.float().mean() for t in outputs).backward()
        step.step()
    return True
