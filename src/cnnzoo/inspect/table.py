"""Rendering a summary's layers as torchinfo 1.8 prints them, or as Markdown or CSV.

The columns torchinfo knows keep its titles, widths (25) and rules for what a row shows: a leaf
shows its own numbers, a container at the deepest level shown sums the layers hidden below it,
a container above that level shows only what no row below it shows (usually "--"). So every
count column sums to its total. cnnzoo's own columns (kernel, stride, padding, receptive field,
jump, MACs, FLOPs, activations, weights) follow the same rules and are as wide as they need be.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Callable

from .field import format_pair

TORCHINFO_COLUMNS = ("input_size", "output_size", "num_params", "params_percent", "kernel_size",
                     "mult_adds", "trainable")
CNNZOO_COLUMNS = ("kernel", "stride", "padding", "receptive_field", "jump", "macs", "flops",
                  "macs_percent", "activations", "weights")
DEFAULT_COLUMNS = ("output_size", "num_params")
TORCHINFO_WIDTH = 25
NAME_WIDTH = 40


@dataclass(frozen=True)
class Column:
    title: str
    kind: str  # 'count' (int, printed with separators), 'percent' (a fraction), 'text'
    value: Callable  # (view, index) -> int | float | str | None


class _View:
    """The rows of a summary seen at one display depth, with torchinfo's subtree arithmetic."""

    def __init__(self, summary, depth: int):
        self.summary = summary
        self.rows = summary.layers
        self.depth = depth
        self._below: dict[int, list[int]] = {}
        self._leftover: dict[tuple[int, str], int] = {}

    def below(self, index: int) -> list[int]:
        """Indices of every row under ``index`` (all descendants, as torchinfo's children)."""
        if index not in self._below:
            depth, end = self.rows[index].depth, index + 1
            while end < len(self.rows) and self.rows[end].depth > depth:
                end += 1
            self._below[index] = list(range(index + 1, end))
        return self._below[index]

    def at_max_depth(self, index: int) -> bool:
        return self.rows[index].depth == self.depth

    def leftover(self, index: int, attribute: str) -> int:
        """What a container holds that no listed row below it holds (torchinfo's leftover)."""
        key = (index, attribute)
        if key not in self._leftover:
            total = getattr(self.rows[index], attribute)
            for child in self.below(index):
                row = self.rows[child]
                if row.recursive:
                    continue
                total -= getattr(row, attribute) if row.is_leaf else self.leftover(child,
                                                                                    attribute)
            self._leftover[key] = total
        return self._leftover[key]

    def shown(self, index: int, attribute: str) -> int:
        row = self.rows[index]
        if row.is_leaf or self.at_max_depth(index):
            return getattr(row, attribute)
        return self.leftover(index, attribute)

    def visible(self) -> list[int]:
        return [i for i, row in enumerate(self.rows) if row.depth <= self.depth]


def _params(view: _View, index: int):
    row = view.rows[index]
    if row.num_params == 0:
        return None
    if row.recursive:
        return "(recursive)"
    if row.is_leaf or view.at_max_depth(index):
        return row.num_params if row.trainable_params else f"({row.num_params:,})"
    return view.leftover(index, "num_params") or None


def _params_percent(view: _View, index: int):
    row = view.rows[index]
    if row.recursive and view.summary.total_params:
        return "(recursive)"
    if not view.summary.total_params:
        return None
    share = view.shown(index, "num_params")
    return share / view.summary.total_params if share else None


def _mult_adds(view: _View, index: int):
    row = view.rows[index]
    if row.is_leaf:
        return row.mult_adds or None
    if view.at_max_depth(index):
        # torchinfo prints "--" here for a container never called itself (a ModuleList),
        # hiding what is below it; the sum keeps the column adding up to the total
        return sum(view.rows[i].mult_adds for i in view.below(index)
                   if view.rows[i].is_leaf) or None
    return None


def _macs(view: _View, index: int):
    row = view.rows[index]
    total = row.macs
    if not row.is_leaf and view.at_max_depth(index):
        total += sum(view.rows[i].macs for i in view.below(index))
    return total or None


def _macs_percent(view: _View, index: int):
    macs = _macs(view, index)
    return macs / view.summary.total_macs if macs and view.summary.total_macs else None


def _weights(view: _View, index: int):
    row = view.rows[index]
    if row.weights == 0:
        return None
    if row.recursive:
        return "(recursive)"
    return view.shown(index, "weights") or None


def _shape(shape):
    return str(list(shape)) if shape else None


def _trainable(view: _View, index: int):
    row = view.rows[index]
    if row.num_params == 0:
        return None
    if row.trainable_params == 0:
        return "False"
    return "True" if row.trainable_params == row.num_params else "Partial"


def _kernel_size(view: _View, index: int):
    kernel = getattr(view.rows[index], "kernel_size", None)
    return str(list(kernel)) if isinstance(kernel, (list, tuple)) else (kernel or None)


def _activations(view: _View, index: int):
    size = view.rows[index].output_size
    return math.prod(size[1:]) if len(size) > 1 else None


def _jump(view: _View, index: int):
    row = view.rows[index]
    return format_pair(row.jump) if row.jump is not None and len(row.output_size) == 4 else None


COLUMNS: dict[str, Column] = {
    "input_size": Column("Input Shape", "text", lambda v, i: _shape(v.rows[i].input_size)),
    "output_size": Column("Output Shape", "text", lambda v, i: _shape(v.rows[i].output_size)),
    "num_params": Column("Param #", "count", _params),
    "params_percent": Column("Param %", "percent", _params_percent),
    "kernel_size": Column("Kernel Shape", "text", _kernel_size),
    "mult_adds": Column("Mult-Adds", "count", _mult_adds),
    "trainable": Column("Trainable", "text", _trainable),
    "kernel": Column("Kernel", "text", lambda v, i: _pair_or_none(v.rows[i].kernel)),
    "stride": Column("Stride", "text", lambda v, i: _pair_or_none(v.rows[i].stride)),
    "padding": Column("Padding", "text", lambda v, i: _pair_or_none(v.rows[i].padding)),
    "receptive_field": Column("Receptive field", "text",
                              lambda v, i: _pair_or_none(v.rows[i].receptive_field)),
    "jump": Column("Jump", "text", _jump),
    "macs": Column("MACs", "count", _macs),
    "flops": Column("FLOPs", "count", lambda v, i: 2 * (_macs(v, i) or 0) or None),
    "macs_percent": Column("MACs %", "percent", _macs_percent),
    "activations": Column("Activations", "count", _activations),
    "weights": Column("Weights", "count", _weights),
}


def _pair_or_none(pair):
    if pair is None:
        return None
    return pair if isinstance(pair, str) else format_pair(pair)


def _text(column: Column, value) -> str:
    if column.kind == "percent":
        if value is None:
            return "     --"
        return value if isinstance(value, str) else f"{value:>7.2%}"
    if value is None:
        return "--"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _layer_title(row) -> str:
    return f"{row.class_name}: {row.depth}-{row.depth_index}" if row.depth else row.class_name


def _tree_prefix(depth: int) -> str:
    if depth == 0:
        return ""
    if depth == 1:
        return "├─"
    return "│    " * (depth - 1) + "└─"


def scaled(number: float) -> tuple[str, str]:
    """(unit, value) as torchinfo scales counts: T, G or M with two decimals (whole numbers
    without), e.g. ('M', '4.22')."""
    for factor, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if number >= factor or unit == "M":
            value = number / factor
            return unit, f"{int(value):,d}" if value.is_integer() else f"{value:,.2f}"


def render_table(summary, columns, depth: int) -> str:
    """The torchinfo layout: a rule, the header, the rows, the totals, the size estimates."""
    view = _View(summary, depth)
    chosen = [COLUMNS[name] for name in columns]
    visible = view.visible()
    cells = [[_text(column, column.value(view, i)) for column in chosen] for i in visible]
    widths = []
    for position, (name, column) in enumerate(zip(columns, chosen)):
        if name in TORCHINFO_COLUMNS:
            widths.append(TORCHINFO_WIDTH)
        else:
            widths.append(max([len(column.title)] + [len(row[position]) for row in cells]))
    name_width = NAME_WIDTH
    longest = max(len(_layer_title(row)) + row.depth * 5 + 1 for row in summary.layers)
    if longest >= name_width:
        name_width = math.ceil(longest / 5) * 5

    def line(title: str, values) -> str:
        text = f"{title:<{name_width}} "
        for value, width in zip(values, widths):
            text += f"{value:<{width}} "
        return text.rstrip()

    rule = "=" * (name_width + sum(widths))
    unit, mult_adds = scaled(summary.total_mult_adds)
    lines = [rule, line("Layer (type:depth-idx)", [c.title for c in chosen]), rule]
    for index, row_cells in zip(visible, cells):
        row = summary.layers[index]
        lines.append(line(_tree_prefix(row.depth) + _layer_title(row), row_cells))
    mb = 1e6
    lines += [
        rule,
        f"Total params: {summary.total_params:,}",
        f"Trainable params: {summary.trainable_params:,}",
        f"Non-trainable params: {summary.non_trainable_params:,}",
        f"Total mult-adds ({unit}): {mult_adds}",  # torchinfo 1.8 prints "(Units.MEGABYTES)"
        rule,
        f"Input size (MB): {summary.input_bytes / mb:0.2f}",
        f"Forward/backward pass size (MB): {summary.forward_backward_bytes / mb:0.2f}",
        f"Params size (MB): {summary.params_bytes / mb:0.2f}",
        f"Estimated Total Size (MB): {summary.estimated_total_bytes / mb:0.2f}",
        rule,
    ]
    return "\n".join(lines)


def render_markdown(summary, columns, depth: int) -> str:
    """A Markdown table of the rows (named by their path in the model) and a list of totals."""
    view = _View(summary, depth)
    chosen = [COLUMNS[name] for name in columns]
    lines = ["| Layer | " + " | ".join(c.title for c in chosen) + " |",
             "| --- |" + " --- |" * len(chosen)]
    for index in view.visible():
        row = summary.layers[index]
        title = f"`{row.name}` {row.class_name}" if row.name else row.class_name
        values = [_text(c, c.value(view, index)).strip() for c in chosen]
        lines.append(f"| {title} | " + " | ".join(values) + " |")
    lines.append("")
    lines += [f"- {label}: {value}" for label, value in summary_lines(summary)]
    return "\n".join(lines)


def render_csv(summary, columns, depth: int) -> str:
    """One CSV row per visible layer, numbers without separators, blanks for '--'."""
    view = _View(summary, depth)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "class", "depth", "depth_index", *columns])
    for index in view.visible():
        row = summary.layers[index]
        values = []
        for name in columns:
            value = COLUMNS[name].value(view, index)
            if isinstance(value, float):
                value = f"{value:.6f}"
            values.append("" if value is None else value)
        writer.writerow([row.name, row.class_name, row.depth, row.depth_index, *values])
    return out.getvalue().rstrip("\n")


def summary_lines(summary) -> list[tuple[str, str]]:
    """(label, value) pairs of what cnnzoo adds to torchinfo's totals: MACs and FLOPs, the
    parameters split, and the training-memory estimate (with the measured peak when asked)."""
    memory = summary.memory
    mb = 1e6

    def count(number: int) -> str:
        unit, value = scaled(number)
        return f"{number:,} ({value} {unit})"

    pairs = [
        ("MACs (convolutions and matrix products)", count(summary.total_macs)),
        ("FLOPs (2 x MACs)", count(summary.total_flops)),
        ("Parameters", f"{summary.total_params:,} = {summary.trainable_params:,} trainable + "
                       f"{summary.non_trainable_params:,} frozen (a shared parameter counted "
                       f"once)"),
        (f"Training memory (MB, {memory.dtype}, batch {summary.batch_size}, "
         f"{memory.optimizer})",
         f"parameters {memory.parameters / mb:0.2f} + gradients {memory.gradients / mb:0.2f} + "
         f"optimizer state {memory.optimizer_state / mb:0.2f} + saved activations "
         f"{memory.activations / mb:0.2f} = {memory.total / mb:0.2f} (estimate)"),
    ]
    if memory.measured_peak is not None:
        pairs.append(("Measured peak (MB)", f"{memory.measured_peak / mb:0.2f} "
                                            f"({memory.measured_note})"))
    elif memory.measured_note:
        pairs.append(("Measured peak", memory.measured_note))
    return pairs
