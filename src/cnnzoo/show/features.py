"""Feature maps: what one input becomes, layer by layer, on its way through a trained network."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ..errors import CnnzooError
from ..plots import drawing, new_figure
from ..training.evaluation import run_dataset
from ._common import (as_picture, capture, default_out, map_layers, pick_layer, scaled_each,
                      shape_text, tile)
from .architecture import layer_boxes

MAX_ROWS = 10  # layers drawn when no layer is named
GRID_COLUMNS = 8  # maps per row when one layer is drawn


def feature_layers(model, input_size) -> list[tuple[str, str]]:
    """(module name, title) of the layers whose outputs are drawn by default: the boxes of the
    architecture diagram (``layer_boxes``) that give feature maps larger than 1x1, at most
    ``MAX_ROWS``; the name is that of the last layer folded into a box (the activation after a
    convolution)."""
    from ..inspect.shapes import trace_shapes

    rows = trace_shapes(model, input_size)
    calls = Counter(row.name for row in rows)
    chosen = []
    for box in layer_boxes(rows, max_boxes=3 * MAX_ROWS):
        if len(box.output_shape) != 3 or box.output_shape[1:] == (1, 1):
            continue  # a vector, or 1x1 maps (global pooling), has nothing to look at
        # a module run twice (one ReLU shared by a block) is captured at its last call, which
        # may lie outside this box: draw the box's main layer instead
        name = box.names[-1] if calls[box.names[-1]] == 1 else box.names[0]
        chosen.append((name, box.title))
    if len(chosen) > MAX_ROWS:  # keep the first and last, evenly spaced between
        keep = np.linspace(0, len(chosen) - 1, MAX_ROWS).round().astype(int)
        chosen = [chosen[i] for i in sorted(set(keep.tolist()))]
    return chosen


@drawing
def draw_features(model, x: torch.Tensor, *, layer: str | None = None,
                  channels: int | None = None, classes=None, true_label: int | None = None,
                  logits: torch.Tensor | None = None, title: str = ""):
    """A figure of the feature maps of one input ``x`` (1, C, H, W), preprocessed as the model
    expects. Without ``layer``: the input, then the first ``channels`` maps of each stage
    (``feature_layers``, default 8), each row titled with the layer and its output shape. With
    ``layer``: the first ``channels`` maps (default 64) of that layer in a grid. Each map is
    stretched to its own range. With ``classes`` the input's title gives the prediction (and
    ``true_label`` when known), read from ``logits`` (1, K) when given (a run's own, which may
    average the mirror image's: ``run_logits``), else from the model's output for ``x``."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one input (1, C, H, W), not {tuple(x.shape)}")
    if channels is not None and channels < 1:
        raise CnnzooError(f"channels={channels}: channels must be at least 1")
    input_size = tuple(x.shape[1:])
    if layer is None:
        layers = feature_layers(model, input_size)
    else:
        pick_layer(model, layer, map_layers(model, input_size), "layer with feature maps")
        layers = [(layer, type(dict(model.named_modules())[layer]).__name__)]
    with torch.inference_mode():
        outputs = capture(model, x, [name for name, _ in layers] + [""])
    heading = _prediction_text(outputs[""] if logits is None else logits, classes, true_label)

    if layer is None:
        fig = new_figure(figsize=(9, 1.25 * (len(layers) + 1) + 0.4))
        axes = fig.subplots(len(layers) + 1, 1, squeeze=False)
        axes = axes[:, 0]
        _show_input(axes[0], x[0], heading)
        for ax, (name, label) in zip(axes[1:], layers):
            maps = outputs[name][0].float().cpu().numpy()
            shown = min(channels or 8, len(maps))
            _show_maps(ax, _mosaic(maps[:shown], shown))
            ax.set_title(f"{name}  {label}: {shape_text(maps.shape)} (first {shown} maps)",
                         fontsize=8, loc="left")
    else:
        maps = outputs[layer][0].float().cpu().numpy()
        shown = min(channels or 64, len(maps))
        columns = min(GRID_COLUMNS, shown)
        rows = -(-shown // columns)
        fig = new_figure(figsize=(9, max(2.2, 1.1 * rows) + 0.6))
        axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 4]})
        _show_input(axes[0], x[0], heading.replace(", ", "\n"), separator="\n")
        _show_maps(axes[1], _mosaic(maps[:shown], columns))
        axes[1].set_title(f"{layer}: {shape_text(maps.shape)} ({shown} maps)", fontsize=8,
                          loc="left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _mosaic(maps: np.ndarray, columns: int, least: int = 24) -> np.ndarray:
    """Maps (N, H, W), each stretched to [0, 1], tiled in ``columns`` with gaps of a twelfth of
    a side. Small maps have each pixel repeated until a side has ``least`` pixels, so the gaps
    look alike at every layer (a one-pixel gap between 4x4 maps would be a quarter of one)."""
    maps = scaled_each(maps)
    factor = -(-least // min(maps.shape[1:]))
    if factor > 1:
        maps = maps.repeat(factor, axis=1).repeat(factor, axis=2)
    return tile(maps, columns, gap=max(1, maps.shape[1] // 12))


def _prediction_text(logits: torch.Tensor, classes, true_label) -> str:
    if classes is None:
        return "input"
    probabilities = logits.float().softmax(dim=1)[0]
    best = int(probabilities.argmax())
    text = f"predicted {classes[best]} ({probabilities[best]:.0%})"
    if true_label is not None:
        text += f", true {classes[true_label]}"
    return text


def _show_input(ax, image: torch.Tensor, heading: str, separator: str = ": ") -> None:
    picture = as_picture(image)
    ax.set_anchor("W")
    ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, interpolation="nearest")
    ax.set_title(f"input {shape_text(image.shape)}{separator}{heading}", fontsize=8, loc="left")
    ax.set_xticks([])
    ax.set_yticks([])


def _show_maps(ax, mosaic: np.ndarray) -> None:
    import matplotlib

    ax.set_anchor("W")  # rows of different widths line up on the left, under their titles
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def run_input(run, image=None, index: int | None = None,
              data_dir=None) -> tuple[torch.Tensor, int | None, str]:
    """One input for a run's model: the image file ``image`` read as ``cnnzoo predict`` reads it,
    or test image number ``index`` (of the run's data, or of that in ``data_dir``). Returns
    (x (1, C, H, W) preprocessed, true label or None, a short name for file names)."""
    from ..training.evaluation import DARK_BACKGROUND, load_image, preprocess

    if (image is None) == (index is None):
        raise CnnzooError("give an image file or index= (a test image), not both or neither")
    if image is not None:
        channels, height, width = run.config["image_size"]
        pixels = load_image(image, channels, (height, width),
                            run.config["data"] in DARK_BACKGROUND)
        return preprocess(run, pixels[None]), None, Path(image).stem
    dataset = run_dataset(run, data_dir=data_dir)
    if not 0 <= index < len(dataset):
        raise CnnzooError(f"index={index} is outside the test set (0 to {len(dataset) - 1})")
    return (preprocess(run, dataset.images[index:index + 1]), int(dataset.labels[index]),
            f"test{index}")


def run_features(run, image=None, *, index: int | None = None, layer: str | None = None,
                 channels: int | None = None, data_dir=None, title: str | None = None):
    """``draw_features`` of a trained run's model for an image file or test image ``index``
    (``run_input``), the prediction in the input's title computed as ``cnnzoo predict`` and
    ``cnnzoo eval`` compute it (``run_logits``: the run's flip averaging and autocast).
    Returns (figure, a short name of the input for file names)."""
    from ..training.evaluation import run_logits

    x, label, stem = run_input(run, image, index, data_dir)
    fig = draw_features(run.model, x, layer=layer, channels=channels, classes=run.classes,
                        true_label=label, logits=run_logits(run, x),
                        title=title or f"{run.config['model']} on {run.config['data']}")
    return fig, stem


def show_features(run_dir, image=None, *, index: int | None = None, layer: str | None = None,
                  channels: int | None = None, data_dir=None, out=None,
                  force: bool = False) -> Path:
    """Draw the feature maps of an image file (or test image ``index``) through a trained run's
    model (``run_features``) and write the picture to ``out`` (default
    ``RUN_DIR/features-IMAGE[-LAYER].png``); returns the path written."""
    from ..plots import figure_file, save_figure
    from ..training import load_run

    out = figure_file(out, force=force)
    run = load_run(run_dir)
    fig, stem = run_features(run, image, index=index, layer=layer, channels=channels,
                             data_dir=data_dir)
    suffix = f"-{layer}" if layer else ""
    path = out or default_out(run.path, f"features-{stem}{suffix}")
    save_figure(fig, path)
    return path
