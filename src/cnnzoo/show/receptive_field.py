"""The input region one output unit sees, found by a gradient, drawn on a sample image.

The region is the set of input pixels with a non-zero gradient of the unit. On the model as it
is that set can be too small: ReLU passes no gradient where it is off, max pooling passes it to
one pixel of its window, and weights may cancel. So the region is taken from a structural twin
of the model: a float64 copy whose weights are all positive (each kernel an average), biases
zero, normalisation layers the identity, max pooling replaced by average pooling over the same
window, fed an input of ones. Every activation is then positive, every path carries a positive
gradient, and the pixels that reach the unit through any path are exactly those with a non-zero
gradient: the receptive field, clipped by the image border, for any architecture. The
gradient of the real model is drawn beside it (the effective receptive field, Luo et al. 2016).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import CnnzooError
from ..plots import drawing, new_figure
from ._common import as_picture, capture, default_out, map_layers, pick_layer, shape_text


@dataclass(frozen=True)
class Region:
    """Input pixels one unit of a layer sees: rows ``top..bottom`` and columns ``left..right``
    (inclusive), ``mask`` (H, W) bool exactly the pixels; ``unit`` (row, column) in the layer's
    (C, H, W) ``layer_shape``."""

    layer: str
    unit: tuple[int, int]
    layer_shape: tuple[int, int, int]
    top: int
    bottom: int
    left: int
    right: int
    mask: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the region in input pixels."""
        return self.bottom - self.top + 1, self.right - self.left + 1


def structural_twin(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` in eval mode in which every path from the input to an output
    carries a positive gradient (see the module's docstring); ``model`` is not changed."""
    twin = copy.deepcopy(model).double().eval()
    for parent in list(twin.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d) and child.dilation in (1, (1, 1)):
                setattr(parent, child_name, nn.AvgPool2d(child.kernel_size, child.stride,
                                                         child.padding, child.ceil_mode))
            elif isinstance(child, nn.AdaptiveMaxPool2d):
                setattr(parent, child_name, nn.AdaptiveAvgPool2d(child.output_size))
    with torch.no_grad():
        for name, parameter in twin.named_parameters():
            if parameter.dim() >= 2:  # a kernel or weight matrix: average its inputs
                parameter.fill_(1.0 / parameter[0].numel())
            elif name.rpartition(".")[2] == "bias":
                parameter.zero_()
            else:  # scales: normalisation weights, trainable subsampling coefficients
                parameter.fill_(1.0)
        for module in twin.modules():
            if getattr(module, "running_mean", None) is not None:
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
    return twin


def _unit_gradient(model: nn.Module, x: torch.Tensor, layer: str, unit) -> tuple[torch.Tensor,
                                                                                tuple, tuple]:
    """d(sum over channels of ``layer``'s output at ``unit``)/d(x): (C, H, W), with the unit
    and the layer's output shape (C, H, W); ``unit`` None means the centre."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        output = capture(model, x, [layer])[layer]
        shape = tuple(output.shape[1:])
        if unit is None:
            unit = (shape[1] // 2, shape[2] // 2)
        row, column = unit
        if not (0 <= row < shape[1] and 0 <= column < shape[2]):
            raise CnnzooError(f"unit ({row}, {column}) is outside {layer}'s {shape[1]}x{shape[2]} "
                              f"map; rows 0 to {shape[1] - 1}, columns 0 to {shape[2] - 1}")
        (gradient,) = torch.autograd.grad(output[0, :, row, column].sum(), x)
    return gradient[0], (row, column), shape


def receptive_region(model: nn.Module, input_size, layer: str, unit=None) -> Region:
    """The input pixels that one unit of ``layer`` (a module name of ``model`` with a feature map
    output) depends on, for an input of ``input_size`` (C, H, W); ``unit`` is (row, column) in
    the layer's map, default its centre. Exact for any architecture (see the module docstring);
    the region is clipped to the image."""
    pick_layer(model, layer, map_layers(model, tuple(input_size)), "layer with feature maps")
    twin = structural_twin(model)
    device = next((p.device for p in twin.parameters()), torch.device("cpu"))
    ones = torch.ones((1, *input_size), dtype=torch.float64, device=device)
    gradient, unit, shape = _unit_gradient(twin, ones, layer, unit)
    mask = (gradient.abs().sum(0) > 0).cpu().numpy()
    if not mask.any():
        raise CnnzooError(f"unit {unit} of {layer} depends on no input pixel (it sees only "
                          f"padding); choose a unit nearer the centre")
    rows, columns = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return Region(layer, unit, shape, int(rows[0]), int(rows[-1]), int(columns[0]),
                  int(columns[-1]), mask)


def effective_field(model: nn.Module, x: torch.Tensor, layer: str, unit) -> np.ndarray:
    """|d unit / d input| of the model as it is, summed over input channels: (H, W) for one
    input ``x`` (1, C, H, W); ``unit`` is (row, column) in ``layer``'s map."""
    was_training = model.training
    model.eval()
    try:
        gradient, _, _ = _unit_gradient(model, x, layer, unit)
    finally:
        model.train(was_training)
    return gradient.abs().sum(0).float().cpu().numpy()


def _arithmetic_field(model, input_size, layer: str):
    """(receptive field, jump) of ``layer`` from ``cnnzoo.summary``'s arithmetic, or None."""
    from ..inspect.summary import summary

    try:
        rows = summary(model, input_size=(1, *input_size), depth=99).layers
    except CnnzooError:
        return None
    found = [row for row in rows if row.name == layer and row.receptive_field is not None]
    return (found[-1].receptive_field, found[-1].jump) if found else None


@drawing
def draw_receptive_field(model: nn.Module, x: torch.Tensor, layer: str, unit=None,
                         picture=None, title: str = ""):
    """A figure of the region one unit of ``layer`` sees, as a rectangle on the input ``x``
    (1, C, H, W) (or on ``picture``, the same image as uint8 (C, H, W), when ``x`` is
    normalised), beside the effective receptive field of the model on that input."""
    from matplotlib.patches import Rectangle

    input_size = tuple(x.shape[1:])
    region = receptive_region(model, input_size, layer, unit)
    effective = effective_field(model, x, layer, region.unit)
    arithmetic = _arithmetic_field(model, input_size, layer)
    height, width = region.size
    fig = new_figure(figsize=(9.5, 5.4), layout="constrained")
    axes = fig.subplots(1, 2)
    shown = as_picture(picture if picture is not None else x[0])
    axes[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest")
    axes[1].imshow(effective, cmap="magma", interpolation="nearest")
    for ax in axes:
        ax.add_patch(Rectangle((region.left - 0.5, region.top - 0.5), width, height, fill=False,
                               edgecolor="#00e5ff", linewidth=2))
        ax.set_xticks([])
        ax.set_yticks([])
    row, column = region.unit
    seen = (f"the region one unit sees: rows {region.top}-{region.bottom}, columns "
            f"{region.left}-{region.right} ({height}x{width} pixels)")
    if arithmetic and tuple(arithmetic[0]) != (height, width):
        seen += "\nclipped by the image border: the rest of its field lies in the padding"
    axes[0].set_title(seen, fontsize=8)
    axes[1].set_title("effective field: |d unit / d input| of the model", fontsize=8)
    detail = f"{layer} ({shape_text(region.layer_shape)}), unit at row {row}, column {column}"
    if arithmetic:
        (field_h, field_w), (jump_h, jump_w) = arithmetic
        detail += (f"; receptive field by arithmetic {field_h}x{field_w} pixels, neighbouring "
                   f"units {jump_h}x{jump_w} pixels apart")
    fig.suptitle(f"{title}\n{detail}" if title else detail, fontsize=9)
    return fig


def _sample(dataset, index: int, size) -> torch.Tensor:
    """Image ``index`` of a ``DataSet`` as uint8 (C, H, W) resized to ``size`` (H, W)."""
    import torch.nn.functional as F

    if not 0 <= index < len(dataset):
        raise CnnzooError(f"index={index} is outside {dataset.name}'s test split "
                          f"(0 to {len(dataset) - 1})")
    image = dataset.images[index:index + 1]
    if tuple(image.shape[2:]) != tuple(size):
        shrinking = size[0] < image.shape[2] or size[1] < image.shape[3]
        image = F.interpolate(image.float(), size=tuple(size), mode="bilinear",
                              align_corners=False, antialias=shrinking)
        image = image.round().clamp(0, 255).to(torch.uint8)
    return image[0]


def show_receptive_field(name: str, layer: str, *, unit=None, data: str | None = None,
                         data_dir=None, index: int = 0, out=None, force: bool = False) -> Path:
    """Draw the receptive field of one unit of ``layer`` and write the picture to ``out``; returns
    the path written. ``name`` is a registered model, freshly built (seed 0) for image ``index`` of
    ``data``'s test split (default synthetic) resized to the model's input (default file
    ``receptive-field-NAME-LAYER.png`` here), or a run directory: its trained model on its own test
    image ``index`` (default ``RUN_DIR/receptive-field-LAYER.png``), which takes no ``data``.
    ``data_dir`` is where the data set's files are (for a run: the run's own by default)."""
    from ..data import canonical_name, load_dataset
    from ..plots import figure_file, save_figure

    out = figure_file(out, force=force)
    if Path(name).is_dir():
        if data is not None:
            raise CnnzooError(f"data={data}: a run directory shows its own data set "
                              f"({name}'s test image index=); data= is for a model name")
        from ..training import load_run
        from ..training.evaluation import preprocess
        from ..training.evaluation import run_dataset

        run = load_run(name)
        dataset = run_dataset(run, data_dir=data_dir)
        _sample(dataset, index, dataset.image_size[1:])  # checks the index
        x = preprocess(run, dataset.images[index:index + 1])
        model, picture = run.model, _sample(dataset, index, x.shape[2:])
        title = f"{run.config['model']} trained on {run.config['data']}"
        default = default_out(run.path, f"receptive-field-{layer}")
    else:
        from ..inspect.shapes import build_for_input
        from ..models import model_info

        channels, height, width = model_info(name).default_input_size()
        data = data or "synthetic"
        options = ({"image_size": (channels, height, width)}
                   if canonical_name(data) == "synthetic" else {})
        dataset = load_dataset(data, split="test", data_dir=data_dir, download=False, **options)
        picture = _sample(dataset, index, (height, width))
        with torch.random.fork_rng():
            torch.manual_seed(0)
            # built for the data's channels, so a grayscale image fits an RGB model's layout
            model = build_for_input(name, (picture.shape[0], height, width)).eval()
        x = picture[None].float() / 255
        title = f"{name} (untrained, seed 0) on {dataset.name}"
        default = default_out(".", f"receptive-field-{name}-{layer}")
    fig = draw_receptive_field(model, x, layer, unit, picture=picture, title=title)
    path = out or default
    save_figure(fig, path)
    return path
