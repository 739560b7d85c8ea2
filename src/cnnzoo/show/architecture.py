"""A block diagram of a model, drawn from the model itself: its stages, channels and sizes.

The boxes come from a shape trace (``cnnzoo.trace_shapes``): the module calls at one depth of
the module tree, the deepest that fits on a page, with elementwise layers that keep the shape
(activations, normalisation, dropout) folded into the box before them ("Conv2d 5x5, pad 2 +
Sigmoid"). Only ``Sequential`` containers are opened: any other block (residual, Inception,
dense) has a forward of its own that may branch or add a shortcut, which a chain of boxes would
misdraw, so it stays one box. Nothing is written by hand per model: a new model draws itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..inspect.field import format_pair
from ..plots import drawing, new_figure
from ._common import default_out, shape_text

MAX_BOXES = 26
KIND_COLOURS = {"input": "#ffffff", "conv": "#9ecae1", "pool": "#fdd0a2", "linear": "#a1d99b",
                "block": "#cbc9e2", "other": "#e5e5e5"}
_MAIN_LEAVES = ("Linear", "Flatten", "Bilinear", "RBFOutput", "Embedding")


@dataclass
class Box:
    """One box of the diagram: a module call and the shape-keeping layers folded into it.

    ``names`` are the module names (the main one first), ``output_shape`` is that of the last
    folded layer without the batch axis, ``group`` the name of the module that holds them.
    """

    names: list[str]
    label: str
    kind: str
    output_shape: tuple[int, ...]
    group: str
    folded: list[str] = field(default_factory=list)  # class names of the folded layers

    @property
    def title(self) -> str:
        return " + ".join([self.label] + self.folded)


def _kind(row, leaf: bool) -> str:
    if "Conv" in row.class_name:
        return "conv"
    if "Pool" in row.class_name:
        return "pool"
    if row.class_name in ("Linear", "RBFOutput", "Bilinear"):
        return "linear"
    return "other" if leaf else "block"


def _label(row, leaf: bool) -> str:
    text = row.class_name
    if row.kernel is not None:
        text += f" {row.kernel[0]}x{row.kernel[1]}"
        if row.stride is not None and tuple(row.stride) != (1, 1):
            text += f", stride {format_pair(row.stride)}"
        if row.padding is not None and tuple(row.padding) != (0, 0):
            text += f", pad {format_pair(row.padding)}"
    elif row.class_name == "Linear" and row.input_shape and row.output_shape:
        text += f" {row.input_shape[-1]} -> {row.output_shape[-1]}"
    elif not leaf:
        text = f"{row.class_name} block"
    return text


def _frontier(rows, depth: int, open_all: bool) -> list[tuple[object, bool, int]]:
    """(row, is_leaf, convolutions inside) for the calls at ``depth`` and the leaves and closed
    blocks above it, in call order. Only ``Sequential`` containers are opened unless
    ``open_all``: another block's forward may branch or add a shortcut, which a chain of boxes
    would misdraw."""
    chosen = []
    path: list[tuple[int, bool]] = []  # (depth, open) of the rows enclosing the current one
    for index, row in enumerate(rows):
        while path and path[-1][0] >= row.depth:
            path.pop()
        leaf = index + 1 == len(rows) or rows[index + 1].depth <= row.depth
        is_open = row.depth == 0 or open_all or row.class_name == "Sequential"
        visible = all(opened for _, opened in path)
        path.append((row.depth, is_open))
        if row.depth == 0 or row.output_shape is None or not visible:
            continue
        if row.depth == depth or (row.depth < depth and (leaf or not is_open)):
            convs = 0
            for inner in rows[index + 1:]:
                if inner.depth <= row.depth:
                    break
                convs += "Conv" in inner.class_name
            chosen.append((row, leaf, convs))
    return chosen


def _fold(frontier) -> list[Box]:
    boxes: list[Box] = []
    for row, leaf, convs in frontier:
        group = row.name.rpartition(".")[0]
        shape = tuple(row.output_shape[1:])
        keeps_shape = row.input_shape is not None and tuple(row.input_shape) == tuple(
            row.output_shape)
        if (boxes and leaf and keeps_shape and row.kernel is None
                and row.class_name not in _MAIN_LEAVES and boxes[-1].group == group
                and boxes[-1].output_shape == shape):
            boxes[-1].names.append(row.name)
            boxes[-1].folded.append(row.class_name)
            continue
        label = _label(row, leaf) + (f" ({convs} conv)" if convs else "")
        boxes.append(Box([row.name], label, _kind(row, leaf), shape, group))
    return boxes


def layer_boxes(rows, depth: int | None = None, max_boxes: int = MAX_BOXES) -> list[Box]:
    """The boxes of a diagram from a shape trace's rows (``trace_shapes``): the module calls at
    ``depth`` of the module tree and the leaves above it, shape-keeping elementwise layers
    folded in. By default only ``Sequential`` containers are opened, as deep as keeps the boxes
    to ``max_boxes``; an explicit ``depth`` opens every block down to it."""
    deepest = max((row.depth for row in rows), default=0)
    if depth is not None:
        return _fold(_frontier(rows, max(1, depth), open_all=True))
    chosen = _fold(_frontier(rows, 1, open_all=False))
    for level in range(2, deepest + 1):
        boxes = _fold(_frontier(rows, level, open_all=False))
        if len(boxes) > max_boxes:
            break
        chosen = boxes
    return chosen


@drawing
def draw_architecture(model, input_size, *, title: str = "", depth: int | None = None):
    """A block diagram of ``model`` for an input of ``input_size`` (C, H, W): one box per stage
    or layer (colour: convolution, pooling, linear, block, other), each with its output shape;
    groups named at the left; box width grows with the number of channels."""
    from matplotlib.patches import FancyBboxPatch

    from ..inspect.shapes import trace_shapes

    rows = trace_shapes(model, input_size)
    boxes = layer_boxes(rows, depth)
    channels = [b.output_shape[0] for b in boxes if b.output_shape] + [input_size[0]]
    widest = math.log2(max(channels) + 1)

    def width_of(shape) -> float:
        count = shape[0] if shape else 1
        return 2.6 + 2.2 * math.log2(count + 1) / widest

    step = 0.5
    total = len(boxes) + 1
    fig = new_figure(figsize=(10.5, total * step + 0.9))
    ax = fig.subplots()
    ax.set_xlim(0, 10.5)
    ax.set_ylim(-total * step + step / 2, step * 0.9)
    ax.axis("off")
    centre, shape_x, name_x = 4.3, 7.0, 8.3
    entries = [("input", "input", tuple(input_size), "")] + [
        (b.title, b.kind, b.output_shape, b.names[0]) for b in boxes]
    for index, (label, kind, shape, name) in enumerate(entries):
        y = -index * step
        half = width_of(shape) / 2
        ax.add_patch(FancyBboxPatch((centre - half, y - 0.16), 2 * half, 0.32,
                                    boxstyle="round,pad=0.02,rounding_size=0.06",
                                    facecolor=KIND_COLOURS[kind], edgecolor="#555555", lw=0.8))
        ax.text(centre, y, label, ha="center", va="center", fontsize=7.5)
        ax.text(shape_x, y, shape_text(shape), ha="left", va="center", fontsize=8,
                family="monospace", weight="bold")
        ax.text(name_x, y, name, ha="left", va="center", fontsize=7, color="#555555")
        if index:
            ax.annotate("", xy=(centre, y + 0.17), xytext=(centre, y + step - 0.17),
                        arrowprops=dict(arrowstyle="->", lw=0.8, color="#555555"))
    _draw_groups(ax, boxes, step)
    ax.text(shape_x, step * 0.55, "output shape", fontsize=7.5, color="#555555")
    ax.text(name_x, step * 0.55, "module", fontsize=7.5, color="#555555")
    params = sum(p.numel() for p in model.parameters())
    heading = (f"{title or type(model).__name__}: input {shape_text(input_size)}, "
               f"{params:,} parameters")
    ax.set_title(heading, fontsize=10, loc="left")
    return fig


def _draw_groups(ax, boxes: list[Box], step: float) -> None:
    """A bracket at the left over each run of boxes held by one module, with its name."""
    start = 0
    for index in range(1, len(boxes) + 1):
        if index < len(boxes) and boxes[index].group == boxes[start].group:
            continue
        group = boxes[start].group
        if group:
            top, bottom = -(start + 1) * step + 0.17, -index * step - 0.17
            ax.plot([1.75, 1.65, 1.65, 1.75], [top, top, bottom, bottom], color="#777777",
                    lw=0.8)
            ax.text(1.55, (top + bottom) / 2, group, ha="right", va="center", fontsize=7.5,
                    color="#333333")
        start = index


def show_architecture(name: str, *, input_size=None, depth: int | None = None,
                      out=None, force: bool = False) -> Path:
    """Draw the block diagram of the registered model ``name`` (at ``input_size``, default its
    own) and write the picture to ``out`` (default ``architecture-NAME.png`` here); returns the
    path written."""
    from ..inspect.shapes import build_for_input
    from ..models import model_info
    from ..plots import figure_file, save_figure

    out = figure_file(out, force=force)
    size = tuple(input_size or model_info(name).default_input_size())
    model = build_for_input(name, size)
    path = out or default_out(".", f"architecture-{name}")
    save_figure(draw_architecture(model, size, title=name, depth=depth), path)
    return path
