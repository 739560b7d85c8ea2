"""Pictures of a run, drawn headless with matplotlib: training curves and a confusion matrix;
and how any figure is written to a file, in the format its name ends in."""

from __future__ import annotations

import io
import logging
import re
import warnings
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # headless: no display is needed or used
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from .errors import CnnzooError, CnnzooWarning  # noqa: E402
from .train.checkpoint import atomic_write_bytes  # noqa: E402

# a file name's ending -> matplotlib's format (JPEG through Pillow)
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpeg", ".jpeg": "jpeg"}

# Fonts a label's characters fall back to, glyph by glyph, where matplotlib's DejaVu Sans has
# none (a folder data set's classes may be named in any script); those installed are used.
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR",
                  "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
                  "Droid Sans Fallback", "Microsoft YaHei", "SimHei", "Yu Gothic", "Meiryo",
                  "Hiragino Sans", "PingFang SC", "Apple SD Gothic Neo", "Malgun Gothic",
                  "Noto Sans Arabic", "Noto Sans Hebrew", "Noto Sans Devanagari",
                  "Noto Sans Thai")
_MISSING_GLYPH = re.compile(r"Glyph (\d+) .*missing from font")
_noted_missing: set[str] = set()


def use_fallback_fonts() -> list[str]:
    """Put the installed ``FALLBACK_FONTS`` after matplotlib's own in ``font.family`` (for the
    figures made from now on); returns them. Font files that matplotlib's list of the system's
    lacks (it keeps the list from its first run) are added to it first."""
    known = {font.fname for font in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in known:
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):  # a file matplotlib cannot read
                pass
    installed = {font.name for font in font_manager.fontManager.ttflist}
    available = [name for name in FALLBACK_FONTS if name in installed]
    family = list(matplotlib.rcParams["font.family"])
    matplotlib.rcParams["font.family"] = family + [n for n in available if n not in family]
    return available


use_fallback_fonts()
# Its notes of a fallback font's nearest weight (a Medium font for the normal weight) are
# matplotlib's business, not the user's.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
# A character no font has draws as a box; matplotlib warns of it on every drawing (two lines
# each). cnnzoo notes it once instead, when a figure is rendered (_figure_bytes).
warnings.filterwarnings("ignore", message=_MISSING_GLYPH.pattern, category=UserWarning)


def _figure_bytes(fig, format: str, dpi: int) -> bytes:
    """The figure rendered in ``format``, the characters of its text that no font has noted
    once per process in a ``CnnzooWarning`` instead of matplotlib's warnings at every drawing."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(buffer, format=format, dpi=dpi, bbox_inches="tight")
    missing = []
    for warning in caught:
        found = _MISSING_GLYPH.match(str(warning.message))
        if found is None:  # not ours to change: passed on as it came
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
        elif chr(int(found.group(1))) not in _noted_missing:
            missing.append(chr(int(found.group(1))))
            _noted_missing.add(missing[-1])
    if missing:
        shown = " ".join(missing[:12]) + (" ..." if len(missing) > 12 else "")
        warnings.warn(f"no installed font has {len(missing)} character(s) of the labels "
                      f"({shown}): they are drawn as empty boxes; install a font that has "
                      f"them (for Chinese, Japanese or Korean, Debian's fonts-noto-cjk) and "
                      f"cnnzoo uses it", CnnzooWarning, stacklevel=3)
    return buffer.getvalue()


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
        data = _figure_bytes(fig, FORMATS[path.suffix.lower()], dpi)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, data)


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
    try:
        return _figure_bytes(fig, "png", dpi)
    finally:
        plt.close(fig)

