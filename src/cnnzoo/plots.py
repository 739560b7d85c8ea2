"""Pictures of a run, drawn headless with matplotlib: training curves and a confusion matrix;
and how any figure is written to a file, in the format its name ends in."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # headless: no display is needed or used
import matplotlib.pyplot as plt  # noqa: E402

from .errors import CnnzooError  # noqa: E402
from .train.checkpoint import atomic_write_bytes  # noqa: E402

# a file name's ending -> matplotlib's format (JPEG through Pillow)
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpeg", ".jpeg": "jpeg"}


def output_file(out, option: str = "--out") -> Path | None:
    """``out`` as a ``Path`` (None or empty: None); a one-line ``CnnzooError`` when it is an
    existing folder or lies in a folder that does not exist, so that a command refuses it
    before its work rather than when it writes."""
    if not out:
        return None
    path = Path(out)
    if path.is_dir():
        raise CnnzooError(f"{option} {path} is a directory; give the name of a file to write")
    if not path.parent.is_dir():
        raise CnnzooError(f"{option} {path}: there is no folder {path.parent}; create it or "
                          f"write elsewhere")
    return path


def figure_file(out, option: str = "--out") -> Path | None:
    """``output_file(out)`` for a picture, whose name must end in .png, .svg, .pdf or .jpg (the
    format it is written in); any other ending is a one-line ``CnnzooError``."""
    path = output_file(out, option)
    if path is not None and path.suffix.lower() not in FORMATS:
        raise CnnzooError(f"{option} {path}: end the file name in .png, .svg, .pdf or .jpg, the "
                          f"format the picture is written in")
    return path


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """Write a figure atomically in the format ``path`` ends in (``figure_file``) and close it."""
    try:
        path = figure_file(path)
        buffer = io.BytesIO()
        fig.savefig(buffer, format=FORMATS[path.suffix.lower()], dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


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
