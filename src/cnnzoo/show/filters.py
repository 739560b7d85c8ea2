"""A convolution layer's kernels as a grid: what the first layer learned to look for."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..plots import drawing, new_figure
from ._common import conv_layers, default_out, pick_layer, tile

MAX_PAIRS = 32  # output and input channels drawn for a layer with many of both


def kernel_grid(weight: np.ndarray) -> tuple[np.ndarray, bool, str]:
    """How a weight (O, I, kh, kw) is drawn: (picture, is_rgb, what it shows).

    One input channel: the O kernels in a near-square grid. Three input channels: each kernel
    as a colour patch. 1x1 kernels: the O x I matrix. Otherwise one row per output channel and
    one column per input channel (the first ``MAX_PAIRS`` of each).
    """
    out_ch, in_ch, kh, kw = weight.shape
    gap = max(1, kh // 5)
    if kh == kw == 1:
        return weight[:, :, 0, 0], False, f"{out_ch}x{in_ch} weight matrix of 1x1 kernels"
    if in_ch == 1:
        columns = min(out_ch, max(8, math.ceil(math.sqrt(out_ch))))
        return tile(weight[:, 0], columns, gap), False, f"{out_ch} kernels of 1x{kh}x{kw}"
    if in_ch == 3:
        low, high = weight.min(), weight.max()
        rgb = (weight - low) / (high - low) if high > low else np.zeros_like(weight)
        columns = min(out_ch, max(8, math.ceil(math.sqrt(out_ch))))
        mosaic = tile(np.transpose(rgb, (0, 2, 3, 1)), columns, gap)
        return np.nan_to_num(mosaic, nan=1.0), True, f"{out_ch} kernels of 3x{kh}x{kw} as colour"
    rows, columns = min(out_ch, MAX_PAIRS), min(in_ch, MAX_PAIRS)
    pairs = weight[:rows, :columns].reshape(rows * columns, kh, kw)
    note = "" if (rows, columns) == (out_ch, in_ch) else f", the first {rows}x{columns} shown"
    return tile(pairs, columns, gap), False, (f"{out_ch}x{in_ch} kernels of {kh}x{kw} (rows: "
                                              f"output, columns: input channel{note})")


@drawing
def draw_filters(model, layer: str | None = None, title: str = ""):
    """A figure of the kernels of the convolution ``layer`` of ``model`` (default: the first),
    in a diverging colour map centred on zero (colour kernels scaled together to [0, 1])."""
    import matplotlib

    names = conv_layers(model)
    name = layer if layer is not None else (names[0] if names else "")
    module = pick_layer(model, name, names, "convolution layer")
    weight = module.weight.detach().float().cpu().numpy()
    picture, is_rgb, what = kernel_grid(weight)
    height, width = picture.shape[:2]
    scale = min(8 / width, 8 / height, 0.45)  # inches per kernel pixel, at most 8 in a side
    fig = new_figure(figsize=(max(3.0, width * scale) + 1.2, max(2.0, height * scale) + 0.6))
    ax = fig.subplots()
    if is_rgb:
        ax.imshow(picture, interpolation="nearest")
    else:
        limit = float(np.nanmax(np.abs(picture))) or 1.0
        cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
        image = ax.imshow(np.ma.masked_invalid(picture), cmap=cmap, vmin=-limit, vmax=limit,
                          interpolation="nearest")
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        # a colour bar as tall as the kernels, however few rows they make
        bar = make_axes_locatable(ax).append_axes("right", size=0.15, pad=0.15)
        fig.colorbar(image, cax=bar)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    heading = f"{name}: {what}"
    ax.set_title(f"{title}\n{heading}" if title else heading, fontsize=9)
    return fig


def show_filters(run_dir, layer: str | None = None, out=None, *, force: bool = False) -> Path:
    """Draw the kernels of a trained run's convolution ``layer`` (default: the first) and write
    the picture to ``out`` (default ``RUN_DIR/filters-LAYER.png``); returns the path written."""
    from ..plots import figure_file, save_figure
    from ..training import load_run

    out = figure_file(out, force=force)
    run = load_run(run_dir)
    fig = draw_filters(run.model, layer, title=f"{run.config['model']} on {run.config['data']}")
    name = layer if layer is not None else conv_layers(run.model)[0]
    path = out or default_out(run.path, f"filters-{name}")
    save_figure(fig, path)
    return path
