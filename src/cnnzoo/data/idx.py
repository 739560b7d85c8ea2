"""IDX files, the format of MNIST and Fashion-MNIST, plain or gzip-compressed, every field checked.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values in C order. These data sets hold unsigned bytes
(type 0x08): images as (count, rows, columns), labels as (count,). Whether a file is compressed is
read from its first two bytes, not from its name, and a file must be exactly as long as its header
says: nothing is truncated or padded to fit.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from .errors import CorruptDataError

GZIP_MAGIC = b"\x1f\x8b"
UNSIGNED_BYTE = 0x08
_TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
               0x0D: "float32", 0x0E: "float64"}
_CHUNK = 1 << 22
_KINDS = {1: "a labels file: (count,)", 3: "an images file: (count, rows, columns)"}


def read_idx(path: str | Path, ndim: int) -> torch.Tensor:
    """The unsigned-byte array stored in the IDX file at ``path``, which must have ``ndim`` dims.

    Returns a uint8 tensor of the header's shape. Raises ``CorruptDataError`` (naming the file and
    the defect) for a bad magic number, another data type or rank, a zero dimension, a length that
    differs from the header's, or a damaged gzip stream.
    """
    path = Path(path)
    try:
        with _open(path) as stream:
            dims = _read_header(path, stream, ndim)
            expected = math.prod(dims)
            payload = _read_up_to(stream, expected)
            if len(payload) < expected:
                raise CorruptDataError(
                    f"{path}: truncated: its header promises {_shape(dims)} = {expected:,} bytes "
                    f"of data but the file holds {len(payload):,}")
            extra = _count_rest(stream)  # also makes gzip read its trailer and check the CRC
            if extra:
                raise CorruptDataError(
                    f"{path}: {extra:,} bytes follow the {expected:,} bytes of data its header "
                    f"promises ({_shape(dims)}); it is not a single IDX array")
    except EOFError as error:
        raise CorruptDataError(f"{path}: the gzip stream is truncated (the download or copy "
                               "was cut short)") from error
    except zlib.error as error:
        reason = "CRC check failed" if "data check" in str(error) else str(error)
        raise CorruptDataError(f"{path}: damaged gzip data ({reason})") from error
    except OSError as error:
        raise CorruptDataError(f"{path}: cannot be read ({error.strerror or error})") from error
    array = np.frombuffer(payload, dtype=np.uint8).reshape(dims)
    return torch.from_numpy(array)


def load_idx_pair(images_path: str | Path, labels_path: str | Path,
                  num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 from an IDX images file and labels file.

    Checks that both hold the same count and that every label lies in ``0..num_classes-1``.
    """
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise CorruptDataError(
            f"{labels_path}: holds {labels.shape[0]:,} labels but {Path(images_path).name} holds "
            f"{images.shape[0]:,} images; the two files are not a pair")
    check_labels(labels, num_classes, labels_path)
    return images.unsqueeze(1), labels.to(torch.int64)


def check_labels(labels: torch.Tensor, num_classes: int, path: str | Path) -> None:
    """Raise ``CorruptDataError`` naming ``path`` if a label lies outside ``0..num_classes-1``."""
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        position = int(bad.nonzero()[0, 0])
        raise CorruptDataError(
            f"{path}: label {int(labels[position])} at position {position:,} is outside "
            f"0..{num_classes - 1} ({num_classes} classes)")


def _open(path: Path):
    with open(path, "rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    if path.suffix == ".gz" and not compressed:
        raise CorruptDataError(f"{path}: not gzip data (a .gz file must start with the bytes "
                               "1f 8b); the file is damaged or was renamed")
    return _Gunzip(path) if compressed else open(path, "rb")


class _Gunzip:
    """The decompressed bytes of a gzip file, ``read(n)`` as from a file, in large blocks.

    ``gzip.open`` inflates 8 KB of input per zlib call; each call lets go of the interpreter
    lock, and a thread running Python beside it (the run's plotting library importing) keeps
    it for up to a switch interval at every one of those thousands of calls, and the waits
    outweigh the inflating (measured: BENCHMARKS.md, a run's fixed costs). Here each call takes
    up to ``_CHUNK`` bytes in and gives as many out as the read asks for.
    Members follow one another as in ``gzip``; a stream cut short raises ``EOFError``, damaged
    data (a CRC among it) ``zlib.error``.
    """

    def __init__(self, path: Path):
        self._file = open(path, "rb")
        self._inflate = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
        self._input = b""

    def read(self, size: int) -> bytes:
        parts, wanted = [], size
        while wanted > 0:
            if self._inflate.eof:  # the member ended: another may follow
                rest = self._inflate.unused_data or self._file.read(_CHUNK)
                if not rest:
                    break
                self._inflate, self._input = zlib.decompressobj(wbits=31), rest
            if not self._input:
                self._input = self._file.read(_CHUNK)
                if not self._input:
                    raise EOFError("the gzip stream ends before its last member does")
            data = self._inflate.decompress(self._input, wanted)
            self._input = self._inflate.unconsumed_tail
            parts.append(data)
            wanted -= len(data)
        return b"".join(parts)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.close()


def _read_header(path: Path, stream, ndim: int) -> tuple[int, ...]:
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise CorruptDataError(
            f"{path}: not an IDX file (it starts with bytes {magic.hex(' ') or 'nothing'}; an "
            f"IDX file starts with 00 00 08 0{ndim})")
    type_code, rank = magic[2], magic[3]
    if type_code != UNSIGNED_BYTE:
        kind = _TYPE_NAMES.get(type_code, "unknown")
        raise CorruptDataError(f"{path}: holds {kind} values (IDX type code 0x{type_code:02x}); "
                               "cnnzoo reads unsigned bytes (0x08)")
    if rank != ndim:
        raise CorruptDataError(f"{path}: has {rank} dimension(s) where {ndim} were expected "
                               f"({_KINDS.get(ndim, '')})")
    raw = stream.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise CorruptDataError(f"{path}: truncated inside its header")
    dims = struct.unpack(f">{ndim}I", raw)
    if 0 in dims:
        raise CorruptDataError(f"{path}: its header gives the shape {_shape(dims)}: no data")
    return dims


def _read_up_to(stream, size: int) -> bytearray:
    # Grows with what the file really holds, so a header that claims terabytes costs nothing;
    # each read asks for as much as was read so far (few reads: few waits for the interpreter
    # lock when another thread runs Python).
    buffer = bytearray()
    while len(buffer) < size:
        chunk = stream.read(min(max(_CHUNK, len(buffer)), size - len(buffer)))
        if not chunk:
            break
        buffer += chunk
    return buffer


def _count_rest(stream) -> int:
    extra = 0
    while chunk := stream.read(_CHUNK):
        extra += len(chunk)
    return extra


def _shape(dims) -> str:
    return " x ".join(f"{d:,}" for d in dims)
