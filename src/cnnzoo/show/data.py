"""A grid of a data set's images: one row per class, a few seeded random samples in each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..plots import drawing, new_figure
from ._common import as_picture, default_out, tile
from .limits import MAX_PER_CLASS, check_limit

CELL_INCHES = 0.62  # one image's side in the figure


def sample_per_class(labels: torch.Tensor, num_classes: int, per_class: int,
                     seed: int = 0) -> list[list[int]]:
    """For each class, up to ``per_class`` indices of its images, a seeded random draw kept in
    data set order (fewer when a class has fewer images)."""
    generator = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    chosen = []
    for label in range(num_classes):
        members = (labels == label).nonzero().flatten()
        pick = torch.randperm(len(members), generator=generator)[:per_class]
        chosen.append(members[pick.sort().values].tolist())
    return chosen


@drawing
def draw_data(dataset, per_class: int = 8, seed: int = 0, title: str = ""):
    """A figure of ``per_class`` images (1 to ``MAX_PER_CLASS``) of each class of ``dataset`` (a
    ``DataSet``), one row per class with its name; as many columns as the fullest row has
    images, gaps where a class has fewer."""
    import matplotlib

    check_limit("per_class", per_class, MAX_PER_CLASS, "a wider grid is too large to see")
    chosen = sample_per_class(dataset.labels, dataset.num_classes, per_class, seed)
    columns = max(len(indices) for indices in chosen)
    channels, height, width = dataset.image_size
    blank = np.full((height, width) + ((3,) if channels == 3 else ()), np.nan)
    cells = []
    for indices in chosen:
        row = [as_picture(dataset.images[i]) for i in indices]
        cells += row + [blank] * (columns - len(row))
    mosaic = tile(np.stack(cells), columns, gap=max(1, height // 14))
    rows = dataset.num_classes
    fig = new_figure(figsize=(columns * CELL_INCHES + 1.6, rows * CELL_INCHES + 0.7))
    ax = fig.subplots()
    if channels == 3:
        ax.imshow(np.nan_to_num(mosaic, nan=1.0), interpolation="nearest")
    else:
        cmap = matplotlib.colormaps["gray"].with_extremes(bad="white")
        ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=0, vmax=1,
                  interpolation="nearest")
    step = height + max(1, height // 14)
    ax.set_yticks([k * step + height / 2 - 0.5 for k in range(rows)], dataset.classes,
                  fontsize=9)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"{title or dataset.name}\n{columns} per class of {len(dataset):,} images, "
                 f"{channels}x{height}x{width}", fontsize=9)
    return fig


def show_data(name: str, *, split: str = "train", data_dir=None, per_class: int = 8,
              seed: int = 0, download: bool = False, out=None, force: bool = False) -> Path:
    """Draw ``draw_data`` for the data set ``name`` and write the picture to ``out`` (default
    ``data-NAME.png`` in the current directory); returns the path written."""
    from ..data import load_dataset
    from ..plots import figure_file, save_figure

    out = figure_file(out, force=force)
    dataset = load_dataset(name, split=split, data_dir=data_dir, download=download)
    path = out or default_out(".", f"data-{dataset.name}")
    save_figure(draw_data(dataset, per_class, seed, title=f"{dataset.name} ({split})"), path)
    return path
