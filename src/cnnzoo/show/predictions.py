"""Test images with what a trained run's model says they are: mistakes framed in red."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..errors import CnnzooError
from ..plots import drawing, new_figure
from ..training.evaluation import run_dataset
from ._common import as_picture, default_out
from .limits import MAX_COUNT, check_limit

RIGHT, WRONG = "#1a7f37", "#cf222e"


def predict_images(run, images: torch.Tensor) -> tuple[list[int], list[float]]:
    """The run's predicted class and its probability for each uint8 image (N, C, H, W) of its
    data set, preprocessed and computed as in the run's own evaluations (``run_logits``);
    evaluated in batches on the CPU."""
    from ..training.evaluation import preprocess, run_logits

    labels, confidences = [], []
    for start in range(0, len(images), 256):
        x = preprocess(run, images[start:start + 256])
        best = run_logits(run, x).softmax(dim=1).max(dim=1)
        labels += best.indices.tolist()
        confidences += best.values.tolist()
    return labels, confidences


@drawing
def draw_predictions(images: torch.Tensor, labels, predicted, confidences, classes,
                     title: str = ""):
    """A grid of uint8 images (N, C, H, W), each titled with its predicted class and probability
    and its true class; a wrong prediction gets a red title and frame."""

    count = len(images)
    columns = min(count, 8)
    rows = math.ceil(count / columns)
    fig = new_figure(figsize=(1.45 * columns + 0.3, 1.75 * rows + 0.5))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    for ax, image, truth, guess, confidence in zip(axes.flat, images, labels, predicted,
                                                   confidences):
        picture = as_picture(image)
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        wrong = guess != truth
        colour = WRONG if wrong else RIGHT
        mark = "wrong: " if wrong else ""
        ax.set_title(f"{mark}{_short(classes[guess])} {confidence:.0%}\ntrue: "
                     f"{_short(classes[truth])}", fontsize=7, color=colour)
        for spine in ax.spines.values():
            spine.set_color(colour)
            spine.set_linewidth(3 if wrong else 0.8)
    mistakes = sum(int(g != t) for g, t in zip(predicted, labels))
    heading = f"{count - mistakes} of {count} right, {mistakes} wrong (framed in red)"
    fig.suptitle(f"{title}: {heading}" if title else heading, fontsize=10)
    fig.tight_layout()
    return fig


def _short(name: str, width: int = 14) -> str:
    return name if len(name) <= width else name[:width - 1] + "."


def check_count(count: int) -> None:
    """A one-line ``CnnzooError`` unless ``count`` images, 1 to ``MAX_COUNT``, can be shown."""
    check_limit("count", count, MAX_COUNT, "more images are too small to read in one picture")


def run_predictions(run, *, count: int = 16, split: str = "test", seed: int = 0,
                    mistakes_only: bool = False, data_dir=None):
    """``draw_predictions`` for ``count`` seeded random images of a run's ``split`` (with
    ``mistakes_only``, the first ``count`` misclassified ones in that random order), of the
    run's data or of that in ``data_dir``; ``count`` is 1 to ``MAX_COUNT`` (``check_count``)."""
    check_count(count)
    dataset = run_dataset(run, split, data_dir)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    if mistakes_only:
        predicted, confidences = predict_images(run, dataset.images[order])
        wrong = [i for i, guess in enumerate(predicted) if guess != int(dataset.labels[order[i]])]
        if not wrong:
            raise CnnzooError(f"the model classifies all {len(dataset):,} {split} images "
                              f"correctly; there is no mistake to show")
        chosen = wrong[:count]
        indices = order[chosen]
        predicted = [predicted[i] for i in chosen]
        confidences = [confidences[i] for i in chosen]
    else:
        indices = order[:count]
        predicted, confidences = predict_images(run, dataset.images[indices])
    return draw_predictions(dataset.images[indices], dataset.labels[indices].tolist(), predicted,
                            confidences, run.classes,
                            title=f"{run.config['model']} on {run.config['data']} ({split})")


def show_predictions(run_dir, *, count: int = 16, split: str = "test", seed: int = 0,
                     mistakes_only: bool = False, data_dir=None, out=None,
                     force: bool = False) -> Path:
    """Draw ``run_predictions`` for a run directory and write the picture to ``out`` (default
    ``RUN_DIR/predictions.png``, or ``mistakes.png``); returns the path written."""
    from ..plots import figure_file, save_figure
    from ..training import load_run

    out = figure_file(out, force=force)
    run = load_run(run_dir)
    fig = run_predictions(run, count=count, split=split, seed=seed, mistakes_only=mistakes_only,
                          data_dir=data_dir)
    path = out or default_out(run.path, "mistakes" if mistakes_only else "predictions")
    save_figure(fig, path)
    return path
