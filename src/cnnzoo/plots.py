"""Pictures of a run (training curves, a confusion matrix), and how every figure of cnnzoo is
made, shown and written.

The library draws on ``matplotlib.figure.Figure`` objects of its own (``Picture``), never
through ``pyplot``: nothing here selects a backend or changes matplotlib's settings for the
process, so a notebook's own ``plt.plot(); plt.show()`` keeps working beside cnnzoo, and a
picture returned as a cell's value shows as an image (``Picture._repr_png_``). The ``cnnzoo``
program chooses the headless backend itself.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import re
import warnings
from pathlib import Path

import matplotlib
import matplotlib.ticker
from matplotlib import font_manager
from matplotlib.figure import Figure

from ._epoch import eval_acc
from ._io import atomic_write_bytes, check_target
from .errors import CnnzooError, CnnzooWarning

# a file name's ending -> matplotlib's format (JPEG through Pillow)
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpeg", ".jpeg": "jpeg"}
DPI = 110  # of written pictures and of those shown in a notebook

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
_fallbacks: list[str] | None = None  # installed_fallbacks(), once per process


class Picture(Figure):
    """A matplotlib figure that shows itself as a PNG image where IPython displays it (the
    last expression of a notebook cell), rendered as ``save_figure`` writes it."""

    def _repr_png_(self) -> bytes:
        return _figure_bytes(self, "png", DPI)


def installed_fallbacks() -> list[str]:
    """The ``FALLBACK_FONTS`` installed here. Font files that matplotlib's list of the
    system's lacks (it keeps the list from its first run) are added to it first."""
    known = {font.fname for font in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in known:
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):  # a file matplotlib cannot read
                pass
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return [name for name in FALLBACK_FONTS if name in installed]


def font_families() -> list[str]:
    """matplotlib's ``font.family`` followed by the installed fallback fonts."""
    global _fallbacks
    if _fallbacks is None:
        _fallbacks = installed_fallbacks()
    family = list(matplotlib.rcParams["font.family"])
    return family + [name for name in _fallbacks if name not in family]


@contextlib.contextmanager
def fonts():
    """Within the block, new text takes the fallback fonts too (each text's font is fixed when
    it is made, so the setting need not outlive the drawing); matplotlib's settings are as they
    were afterwards."""
    with matplotlib.rc_context({"font.family": font_families()}):
        yield


def drawing(draw):
    """Decorate a function that makes a figure, so that it draws within ``fonts()``."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with fonts():
            return draw(*args, **kwargs)
    return wrapper


def new_figure(**kwargs) -> Picture:
    """A ``Picture`` (``Figure``'s arguments: ``figsize``, ``layout``, ...)."""
    return Picture(**kwargs)


@contextlib.contextmanager
def _quiet_font_manager():
    """matplotlib's notes of a fallback font's nearest weight (a Medium font for the normal
    weight) are its business, not the user's: hushed while cnnzoo renders."""
    logger = logging.getLogger("matplotlib.font_manager")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _figure_bytes(fig, format: str, dpi: int) -> bytes:
    """The figure rendered in ``format``, the characters of its text that no font has noted
    once per process in a ``CnnzooWarning`` instead of matplotlib's two lines per character
    and drawing."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught, _quiet_font_manager():
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


def output_file(out, option: str = "out", *, force: bool = False) -> Path | None:
    """``out`` as a ``Path`` (None or empty: None), checked before the work that fills it
    (``_io.check_target``): not a folder, a link, a device or a run's own file, in a folder
    that exists, and not an existing file unless ``force``."""
    if not out:
        return None
    from .training.rundir import belongs_to_run

    return check_target(out, force=force, parameter=option, protected=belongs_to_run)


def picture_format(path, option: str = "out") -> str:
    """matplotlib's format for a picture file's name, which must end in .png, .svg, .pdf or
    .jpg; any other ending is a one-line ``CnnzooError``."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise CnnzooError(f"{option}={str(path)!r}: end the file name in .png, .svg, .pdf or "
                          f".jpg, the format the picture is written in")
    return FORMATS[suffix]


def figure_file(out, option: str = "out", *, force: bool = False) -> Path | None:
    """``output_file(out)`` for a picture (``picture_format`` checks its name's ending)."""
    path = output_file(out, option, force=force)
    if path is not None:
        picture_format(path, option)
    return path


def save_figure(fig, path: Path, dpi: int = DPI) -> None:
    """Write a figure atomically in the format ``path`` ends in (``picture_format``)."""
    atomic_write_bytes(path, _figure_bytes(fig, picture_format(path), dpi))


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    """``curves_figure`` written to ``path``."""
    save_figure(curves_figure(history, title), path)


@drawing
def curves_figure(history: list[dict], title: str = "") -> Picture:
    """Train loss, train accuracy and validation or test accuracy against epochs (the book's
    ``Animator`` picture), from rows of ``metrics.csv``; a run with a validation split has its
    test accuracy once, a point at its last epoch."""
    epochs = [row["epoch"] for row in history]
    fig = new_figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    ax.plot(epochs, [row["train_loss"] for row in history], "-o", ms=3, label="train loss")
    ax.plot(epochs, [row["train_acc"] for row in history], "--s", ms=3, label="train acc")
    for key, style in (("val_acc", "-.^"), ("test_acc", "-.v")):
        points = [(row["epoch"], row[key]) for row in history if row.get(key) is not None]
        if points:
            ax.plot(*zip(*points), style, ms=3 if len(points) > 1 else 6,
                    label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_xlim(0.5, max(epochs) + 0.5)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


@drawing
def curves_overlay(histories: dict[str, list[dict]]) -> Picture:
    """Several runs' curves on one figure (``cnnzoo compare``): the accuracy each epoch was
    judged by (validation, or test where a run holds no validation split out) on the left,
    training loss on the right, against epochs, a line per run (name -> rows of
    ``metrics.csv``)."""
    fig = new_figure(figsize=(10, 4))
    accuracy, loss = fig.subplots(1, 2)
    for name, history in histories.items():
        epochs = [row["epoch"] for row in history]
        points = [(row["epoch"], eval_acc(row)) for row in history
                  if eval_acc(row) is not None]
        line, = accuracy.plot(*(zip(*points) if points else ([], [])), "-o", ms=3,
                              label=name)
        loss.plot(epochs, [row["train_loss"] for row in history], "-o", ms=3,
                  color=line.get_color(), label=name)
    for ax, what in ((accuracy, "validation (or test) accuracy"), (loss, "training loss")):
        ax.set_xlabel("epoch")
        ax.set_title(what, fontsize=10)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    accuracy.legend(loc="best", fontsize=8)
    return fig


def plot_confusion(matrix, classes: list[str], path: Path, title: str = "") -> None:
    """``confusion_figure`` written to ``path``."""
    save_figure(confusion_figure(matrix, classes, title), path)


@drawing
def confusion_figure(matrix, classes: list[str], title: str = "") -> Picture:
    """A confusion matrix (rows: true class, columns: predicted), counts written in the cells."""
    import numpy as np

    matrix = np.asarray(matrix)
    size = max(4.0, 0.55 * len(classes) + 2)
    fig = new_figure(figsize=(size + 1, size))
    ax = fig.subplots()
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
    return fig


def figure_png(fig, dpi: int = DPI) -> bytes:
    """A figure as PNG bytes, rendered as ``save_figure`` renders it."""
    return _figure_bytes(fig, "png", dpi)

