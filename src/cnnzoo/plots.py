"""Pictures of a run, drawn headless with matplotlib: training curves and a confusion matrix."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # headless: no display is needed or used
import matplotlib.pyplot as plt  # noqa: E402

from .train.checkpoint import atomic_write_bytes  # noqa: E402


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """Write a figure as PNG atomically and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    """Train loss, train accuracy and test accuracy against epochs (d2l's Animator picture)."""
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(epochs, [row["train_loss"] for row in history], "-o", ms=3, label="train loss")
    ax.plot(epochs, [row["train_acc"] for row in history], "--s", ms=3, label="train acc")
    ax.plot(epochs, [row["test_acc"] for row in history], "-.^", ms=3, label="test acc")
    ax.set_xlabel("epoch")
    ax.set_xlim(0.5, max(epochs) + 0.5)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    save_figure(fig, path)


def plot_confusion(matrix, classes: list[str], path: Path, title: str = "") -> None:
    """A confusion matrix (rows: true class, columns: predicted), counts written in the cells."""
    import numpy as np

    matrix = np.asarray(matrix)
    size = max(4.0, 0.55 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > threshold else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title, fontsize=10)
    save_figure(fig, path)


def figure_png(fig, dpi: int = 110) -> bytes:
    """A figure as PNG bytes, rendered as ``save_figure`` renders it, and closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
