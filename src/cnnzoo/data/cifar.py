"""CIFAR-10's binary version (cifar-10-batches-bin), read as raw bytes: never its pickle version.

Each batch file is a run of 3,073-byte records: one label byte, then a 32x32 image as three
channel planes (red, green, blue), each row-major. That is already (C, H, W) order, so a file
reshapes straight into (N, 3, 32, 32). ``batches.meta.txt`` names the classes, one per line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import CorruptDataError
from .idx import check_labels

IMAGE_SHAPE = (3, 32, 32)
RECORD_BYTES = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
META_FILE = "batches.meta.txt"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")


def read_cifar_batch(path: str | Path,
                     num_classes: int = len(CLASSES)) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from one CIFAR-10 binary batch file.

    Raises ``CorruptDataError`` naming the file if its size is not a whole number of records or a
    label lies outside ``0..num_classes-1``.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise CorruptDataError(f"{path}: cannot be read ({error.strerror or error})") from error
    if data.size == 0 or data.size % RECORD_BYTES:
        raise CorruptDataError(
            f"{path}: {data.size:,} bytes is not a whole number of {RECORD_BYTES:,}-byte records "
            "(1 label byte + 3x32x32 pixels); the file is truncated or not a CIFAR-10 binary "
            "batch")
    records = data.reshape(-1, RECORD_BYTES)
    labels = torch.from_numpy(records[:, 0].astype(np.int64))
    check_labels(labels, num_classes, path)
    images = torch.from_numpy(np.ascontiguousarray(records[:, 1:])).reshape(-1, *IMAGE_SHAPE)
    return images, labels


def read_cifar_classes(path: str | Path) -> tuple[str, ...]:
    """The class names in ``batches.meta.txt``: its non-blank lines, which must number 10."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise CorruptDataError(f"{path}: cannot be read as text ({error})") from error
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != len(CLASSES):
        raise CorruptDataError(f"{path}: names {len(names)} classes where CIFAR-10 has "
                               f"{len(CLASSES)} (one name per line)")
    return names


def load_cifar_split(directory: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor,
                                                                    tuple[str, ...]]:
    """Images (N, 3, 32, 32), labels (N,) and class names of a split from a batches directory.

    ``train`` concatenates data_batch_1..5.bin in order; ``test`` is test_batch.bin. The class
    names come from batches.meta.txt when it is there, else they are CIFAR-10's published names.
    """
    directory = Path(directory)
    meta = directory / META_FILE
    classes = read_cifar_classes(meta) if meta.exists() else CLASSES
    parts = [read_cifar_batch(directory / name, len(classes))
             for name in (TRAIN_FILES if split == "train" else TEST_FILES)]
    images = torch.cat([images for images, _ in parts])
    labels = torch.cat([labels for _, labels in parts])
    return images, labels, classes
