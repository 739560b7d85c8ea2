"""An image folder: one subfolder per class, PNG or JPEG files in it, read once with Pillow.

Layouts: ``ROOT/<class>/<image>`` (a seeded, stratified share of each class is held out as the
test split), or ``ROOT/train/<class>/...`` beside ``ROOT/test/<class>/...`` (or ``ROOT/val``).
Every file under a class folder must be a readable PNG or JPEG (hidden files are skipped), and all
images must share one size unless ``image_size`` asks for them to be resized. When every image is
grayscale the set has one channel; otherwise all become RGB (grayscale repeated, alpha dropped).
"""

from __future__ import annotations

import os
import struct
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import CnnzooError
from .catalog import existing_folder
from .errors import CorruptDataError, DataSetNotFoundError

SUFFIXES = (".png", ".jpg", ".jpeg")
FORMATS = ("PNG", "JPEG")
# What those readers open: Pillow's JPEG reader names a camera's JPEG that carries a second
# picture (stereo, a depth map) MPO; its first picture is read.
_OPENED_FORMATS = (*FORMATS, "MPO")
HELD_OUT_NAMES = ("test", "val")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N"}
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def load_folder(root: str | Path, split: str, *, holdout: float = 0.2, seed: int = 0,
                image_size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor,
                                                                   tuple[str, ...], str]:
    """Images (N, C, H, W) uint8, labels (N,) int64, class names and a source line for one split.

    Without train/test subfolders, ``holdout`` (a fraction) of each class, drawn with ``seed``,
    is the test split and the rest the train split; a class of one image stays in train.
    ``image_size`` (H, W) resizes every image (bilinear); without it, differing sizes are an error.
    """
    root = existing_folder(root, "image folder")
    if not (isinstance(holdout, (int, float)) and 0.0 < holdout < 1.0):
        raise CnnzooError(f"folder: holdout must be a fraction between 0 and 1, not {holdout!r}")
    if not (isinstance(seed, int) and 0 <= seed < 2 ** 64):
        raise CnnzooError(f"folder: seed must be an int in 0 .. 2**64 - 1, not {seed!r}")
    if image_size is not None and not (isinstance(image_size, (tuple, list))
                                       and len(image_size) == 2
                                       and all(isinstance(n, int) and n > 0 for n in image_size)):
        raise CnnzooError(f"folder: image_size must be two positive ints (H, W), not "
                          f"{image_size!r}")
    held_out = next((root / n for n in HELD_OUT_NAMES if (root / n).is_dir()), None)
    if (root / "train").is_dir() and held_out is not None:
        classes = _class_names(root / "train")
        unknown = sorted(set(_class_names(held_out, at_least=1)) - set(classes))
        if unknown:
            raise CorruptDataError(f"{held_out}: class folder(s) {', '.join(unknown)} are not in "
                                   f"{root / 'train'}")
        files = _image_files(root / "train", classes)
        files += _image_files(held_out, classes, missing_ok=True)
        wanted = root / "train" if split == "train" else held_out
        selected = [i for i, (path, _) in enumerate(files) if wanted in path.parents]
        source = str(wanted)
    else:
        classes = _class_names(root)
        files = _image_files(root, classes)
        test = _held_out_indices([label for _, label in files], len(classes), holdout, seed)
        selected = [i for i in range(len(files)) if (i in test) == (split == "test")]
        source = f"{root} ({split} split: {holdout:.0%} of each class held out, seed {seed})"
    if not selected:
        raise CnnzooError(f"{root}: the {split} split is empty (too few images per class to hold "
                          f"{holdout:.0%} out)")
    headers = [_header(path) for path, _ in files]
    size = tuple(image_size) if image_size is not None else _common_size(root, files, headers)
    channels = 1 if all(mode in _GRAY_MODES for _, mode in headers) else 3
    images = np.empty((len(selected), channels, *size), dtype=np.uint8)
    for row, index in enumerate(selected):
        images[row] = _pixels(files[index][0], channels, size)
    labels = torch.tensor([files[i][1] for i in selected], dtype=torch.int64)
    return torch.from_numpy(images), labels, classes, source


def _class_names(directory: Path, at_least: int = 2) -> tuple[str, ...]:
    # A test split may lack classes; a training set of one class is learnt at zero loss.
    names = sorted(p.name for p in directory.iterdir()
                   if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataSetNotFoundError(f"{directory} has no class subfolders (expected "
                                   f"{directory}/<class>/<image>.png, one subfolder per class)")
    if len(names) < at_least:
        raise DataSetNotFoundError(f"{directory} has one class subfolder, {names[0]}; a "
                                   f"classifier needs two or more (expected "
                                   f"{directory}/<class>/<image>.png, one subfolder per class)")
    return tuple(names)


def _image_files(directory: Path, classes: tuple[str, ...],
                 missing_ok: bool = False) -> list[tuple[Path, int]]:
    files = []
    for label, name in enumerate(classes):
        folder = directory / name
        if not folder.is_dir():
            if missing_ok:
                continue
            raise DataSetNotFoundError(f"{folder} is missing")
        found = _files_under(folder)
        for path in found:
            if path.suffix.lower() not in SUFFIXES:
                raise CorruptDataError(f"{path}: not a PNG or JPEG file (cnnzoo reads "
                                       f"{', '.join(SUFFIXES)}); move it out of the class folder")
        if not found:
            raise CorruptDataError(f"{folder}: class folder holds no images")
        files += [(path, label) for path in found]
    return files


def _files_under(folder: Path) -> list[Path]:
    # Links are followed, to folders too, each real folder once (a link to an ancestor does not
    # loop); a broken link is kept, so that reading it names it rather than leaving it out.
    found, seen = [], set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        paths = (Path(top, name) for name in names if not name.startswith("."))
        found += [path for path in paths if path.is_file() or path.is_symlink()]
    return sorted(found)


def _held_out_indices(labels: list[int], num_classes: int, holdout: float, seed: int) -> set[int]:
    generator = torch.Generator().manual_seed(seed)
    labels_tensor = torch.tensor(labels)
    test = set()
    for label in range(num_classes):
        members = (labels_tensor == label).nonzero().flatten()
        count = min(round(holdout * len(members)), len(members) - 1)
        pick = torch.randperm(len(members), generator=generator)[:count]
        test.update(members[pick].tolist())
    return test


# EXIF orientations that turn the picture a quarter: its stored width is its height
QUARTER_TURNS = (5, 6, 7, 8)
ORIENTATION = 0x0112  # the EXIF tag


def orientation(image: Image.Image) -> int | None:
    """The image's EXIF orientation (1 to 8), None where it has none or it cannot be read (a
    truncated file: its decoding says what is wrong)."""
    try:
        return image.getexif().get(ORIENTATION)
    except (OSError, ValueError, SyntaxError, struct.error):
        return None


def upright(image: Image.Image) -> Image.Image:
    """The image as a viewer shows it: turned and mirrored by its EXIF orientation (a phone's
    portrait photo is stored on its side), or as it is where it has none."""
    return ImageOps.exif_transpose(image) if orientation(image) in range(2, 9) else image


def _open(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # palette transparency notes
            # Pillow only warns between one and two times its pixel limit, and decodes anyway
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise CorruptDataError(f"{path}: larger than Pillow's decompression-bomb limit "
                               f"({Image.MAX_IMAGE_PIXELS:,} pixels)") from error
    except (OSError, ValueError, SyntaxError) as error:
        raise CorruptDataError(f"{path}: not a readable image ({error})") from error
    if image.format not in _OPENED_FORMATS:
        image.close()
        raise CorruptDataError(f"{path}: a {image.format} image; cnnzoo reads PNG and JPEG")
    return image


def _header(path: Path) -> tuple[tuple[int, int], str]:
    with _open(path) as image:
        width, height = image.size
        if orientation(image) in QUARTER_TURNS:
            width, height = height, width
        return (height, width), image.mode


def _common_size(root: Path, files, headers) -> tuple[int, int]:
    sizes = Counter(size for size, _ in headers)
    if len(sizes) == 1:
        return next(iter(sizes))
    (common, _), (odd, _) = sizes.most_common(2)
    example = files[next(i for i, (size, _) in enumerate(headers) if size == odd)][0]
    counts = ", ".join(f"{n} of {h}x{w}" for (h, w), n in sizes.most_common())
    raise CorruptDataError(
        f"{root}: images differ in size ({counts}; e.g. {example} is {odd[0]}x{odd[1]}, most are "
        f"{common[0]}x{common[1]}); train with resize=S to read each at SxS, or resize the "
        f"files to one size, e.g. all to {common[0]}x{common[1]} (from Python: "
        f"load_dataset(..., image_size=(H, W)))")


def eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit grayscale image scaled to 8 bits (0..65535 to 0..255); any other as it is.
    Pillow's own 16-bit to 8-bit conversion clips at 255 instead of scaling."""
    if image.mode not in _SIXTEEN_BIT_MODES:
        return image
    wide = np.asarray(image, dtype=np.float64)
    return Image.fromarray(np.clip(np.rint(wide / 257), 0, 255).astype(np.uint8))


def _pixels(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    try:
        with _open(path) as image:
            image.load()
            image = eight_bit(upright(image))
            with warnings.catch_warnings():
                # a palette's transparency: the alpha it would become is dropped anyway
                warnings.simplefilter("ignore", UserWarning)
                image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(image)
    except CorruptDataError:
        raise
    except (OSError, ValueError, SyntaxError) as error:
        raise CorruptDataError(f"{path}: not a readable image ({error})") from error
    return array[None] if channels == 1 else array.transpose(2, 0, 1)
