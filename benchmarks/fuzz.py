"""Bad-input campaign: the data readers and the command-line parser against random and damaged input.

Eight targets, each fed by a hypothesis strategy:

    idx     an MNIST data directory whose images or labels file is valid, damaged (truncated,
            extended, bytes flipped, header fields changed, gzip cut or corrupted) or random
    cifar   a cifar-10-batches-bin directory with one batch file or batches.meta.txt damaged
    folder  an image folder (flat or train/test) of PNG/JPEG files, damaged files, other formats
            under image suffixes, stray files, hidden files, odd class names and bad options
    cli     ``cnnzoo.cli.build_parser().parse_args`` on token lists drawn from the real
            subcommands, flags and choices mixed with junk, then the checks the commands make
            before any heavy work (``parse_input_size``, ``parse_unit``, model and data set names)
    config      a run directory whose ``config.json`` has values changed, keys removed or added
                (in the recipe too) or its bytes damaged, read back (``load_run``) and resumed up
                to its first epoch
    checkpoint  the same with ``checkpoint.pt``: entries removed or replaced, tensors of other
                shapes, dtypes or NaN inside the model and optimiser state, with or without a
                valid digest, bytes damaged
    metrics     the same with ``metrics.csv``: other headers, junk cells, short rows, damage
    lock        the run lock with ``.lock`` a link (to a file, to nothing, to /dev/null), a hard
                link, a FIFO, a folder, held by another process or holding anything: the linked
                file must come out unchanged, and only a free lock of cnnzoo's may be taken

Every case must end in a result or in a one-line ``CnnzooError``; anything else (another
exception, a multi-line message, a case running past its time limit, a crash of the interpreter)
is a defect. Each target runs in its own child process so that a crash is counted, not fatal.

    .venv/bin/python benchmarks/fuzz.py                      # 5000 cases per target
    .venv/bin/python benchmarks/fuzz.py --cases 500 --target idx --target cli
    .venv/bin/python benchmarks/fuzz.py --seed 3             # another stream of cases
    .venv/bin/python benchmarks/fuzz.py --cases 10000 --jobs 2 --target config \
        --target checkpoint --target metrics --target lock      # the run directory's files

tests/test_fuzz.py runs the same targets with a few hundred cases each.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import math
import os
import platform
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed as hypothesis_seed, settings
from hypothesis import strategies as st

CASE_SECONDS = 20.0  # a case taking longer than this is a hang (generous: the machine is shared)


class Defect(AssertionError):
    """A case that did not end in a result or a one-line ``CnnzooError``."""


# --- running one call ----------------------------------------------------------------------------

class _Timeout(BaseException):
    """Raised by the alarm inside a case that ran too long (a BaseException, so no ``except
    Exception`` in the code under test can swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupt the block after ``seconds`` (Unix main thread; elsewhere no limit)."""
    usable = hasattr(signal, "setitimer") and _in_main_thread()
    if not usable:
        yield
        return

    def alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


def answered(call: Callable[[], object]):
    """("loaded", value) or ("error", message) for a call that ends properly; ``Defect`` else."""
    from cnnzoo.errors import CnnzooError

    try:
        with time_limit(CASE_SECONDS):
            value = call()
    except _Timeout:
        raise Defect(f"hang: no answer within {CASE_SECONDS:g} s") from None
    except CnnzooError as error:
        message = str(error)
        if not message.strip() or "\n" in message or "\r" in message:
            raise Defect(f"CnnzooError whose message is not one line: {message[:300]!r}") from error
        return "error", message
    except Exception as error:  # reaches the user as a traceback
        raise Defect(_first_line(error)) from error
    return "loaded", value


# --- byte-level damage ---------------------------------------------------------------------------

MUTATIONS = ("none", "truncate", "extend", "flip", "overwrite", "insert")


@st.composite
def damage(draw, kinds=MUTATIONS):
    """A description of damage to apply to a byte string (see ``apply_damage``)."""
    kind = draw(st.sampled_from(kinds))
    return (kind, draw(st.integers(0, 1 << 16)), draw(st.binary(min_size=1, max_size=16)))


def apply_damage(data: bytes, spec) -> bytes:
    kind, where, junk = spec
    if kind == "none" or (not data and kind in ("flip", "overwrite")):
        return data
    at = where % (len(data) + (kind in ("insert", "truncate")))
    if kind == "truncate":
        return data[:at]
    if kind == "extend":
        return data + junk
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ (1 << (where % 8))]) + data[at + 1:]
    if kind == "overwrite":
        return data[:at] + junk + data[at + len(junk):]
    return data[:at] + junk + data[at:]  # insert


# --- target: IDX (MNIST) -------------------------------------------------------------------------

IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
TYPE_CODES = (0x08, 0x08, 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF)


@dataclass
class IdxCase:
    split: str
    fuzzed: int                 # 0: the images file is the fuzzed one, 1: the labels file
    count: int                  # images in the valid partner file
    size: tuple[int, int]
    type_code: int
    dims: tuple[int, ...]       # as written in the header (any rank)
    payload: bytes
    labels_limit: int           # labels drawn in 0..labels_limit-1 (10 is MNIST's)
    damage: tuple
    wrapper: str                # raw, gzip, gzip-cut, gzip-corrupt, random
    random_bytes: bytes
    name_form: str              # ".gz", "", ".idx" (the Windows unpacking's names)


@st.composite
def idx_cases(draw):
    split = draw(st.sampled_from(("train", "test")))
    fuzzed = draw(st.sampled_from((0, 1)))
    count = draw(st.integers(1, 4))
    size = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    right_rank = 3 if fuzzed == 0 else 1
    if draw(st.integers(0, 3)) == 0:  # a quarter of the cases are intact files
        dims = (count, *size) if fuzzed == 0 else (count,)
        payload = bytes(draw(st.lists(st.integers(0, 9), min_size=math.prod(dims),
                                      max_size=math.prod(dims))))
        name_form = draw(st.sampled_from((".gz", "", ".idx")))
        wrapper = "gzip" if name_form == ".gz" else draw(st.sampled_from(("raw", "gzip")))
        return IdxCase(split, fuzzed, count, size, 0x08, dims, payload, 10, ("none", 0, b"\0"),
                       wrapper, b"", name_form)
    rank = draw(st.sampled_from((right_rank, right_rank, right_rank, 0, 1, 2, 3, 4)))
    right_dims = (count, *size) if fuzzed == 0 else (count,)
    if rank == right_rank and draw(st.booleans()):
        dims = right_dims
    else:
        dims = tuple(draw(st.sampled_from((0, 1, 2, 3, 5, 255, 2**31, 2**32 - 1)))
                     for _ in range(rank))
    length = math.prod(dims) if dims else 0
    labels_limit = draw(st.sampled_from((10, 10, 11, 256)))
    if length <= 64:
        if fuzzed == 1:
            payload = bytes(draw(st.lists(st.integers(0, labels_limit - 1), min_size=length,
                                          max_size=length)))
        else:
            payload = draw(st.binary(min_size=length, max_size=length))
    else:
        payload = draw(st.binary(max_size=64))
    return IdxCase(split, fuzzed, count, size, draw(st.sampled_from(TYPE_CODES)), dims, payload,
                   labels_limit, draw(damage()),
                   draw(st.sampled_from(("raw", "raw", "gzip", "gzip", "gzip-cut", "gzip-corrupt",
                                         "random"))),
                   draw(st.binary(max_size=80)), draw(st.sampled_from((".gz", "", ".idx"))))


def _idx_bytes(type_code: int, dims, payload: bytes) -> bytes:
    return bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def _wrap(data: bytes, wrapper: str, where: int) -> bytes:
    if wrapper == "raw":
        return data
    packed = gzip.compress(data, mtime=0)
    if wrapper == "gzip-cut":
        return packed[:2 + where % (len(packed) - 2)]
    if wrapper == "gzip-corrupt":
        at = 10 + where % (len(packed) - 10)
        return packed[:at] + bytes([packed[at] ^ 0x5A]) + packed[at + 1:]
    return packed


def run_idx(case: IdxCase, workdir: Path) -> str:
    """Load the MNIST split from a directory holding the case's files; check what loads."""
    from cnnzoo.data import load_dataset

    rng = np.random.default_rng(len(case.payload))
    images = rng.integers(0, 256, (case.count, *case.size), dtype=np.uint8)
    labels = rng.integers(0, 10, case.count, dtype=np.uint8)
    valid = [_idx_bytes(0x08, images.shape, images.tobytes()),
             _idx_bytes(0x08, labels.shape, labels.tobytes())]
    if case.wrapper == "random":
        fuzzed = case.random_bytes
    else:
        fuzzed = _wrap(apply_damage(_idx_bytes(case.type_code, case.dims, case.payload),
                                    case.damage), case.wrapper, case.damage[1])
    names = IDX_FILES[case.split]
    for index, stem in enumerate(names):
        data = fuzzed if index == case.fuzzed else gzip.compress(valid[index], mtime=0)
        name = f"{stem}.gz" if index != case.fuzzed else {
            ".gz": f"{stem}.gz", "": stem, ".idx": stem.replace("-idx", ".idx")}[case.name_form]
        (workdir / name).write_bytes(data)
    outcome, dataset = answered(lambda: load_dataset("mnist", case.split, data_dir=workdir,
                                                     download=False))
    untouched = (case.wrapper in ("raw", "gzip") and case.damage[0] == "none"
                 and case.type_code == 0x08 and case.labels_limit == 10
                 and case.dims == ((case.count, *case.size) if case.fuzzed == 0
                                   else (case.count,))
                 and not (case.name_form == ".gz" and case.wrapper == "raw"))
    if outcome == "loaded":
        check_dataset(dataset)
        if case.fuzzed == 1 and tuple(dataset.images.shape) != (case.count, 1, *case.size):
            raise Defect(f"loaded images of {tuple(dataset.images.shape)} from a valid file of "
                         f"{(case.count, *case.size)}")
    elif untouched:
        raise Defect(f"a valid file was refused: {dataset}")
    return outcome


# --- target: CIFAR-10 binary ---------------------------------------------------------------------

CIFAR_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
RECORD = 1 + 3 * 32 * 32


@dataclass
class CifarCase:
    split: str
    fuzzed: str                 # a batch file name or "batches.meta.txt"
    records: int
    labels: tuple[int, ...]
    damage: tuple
    random_bytes: bytes
    meta: str | None            # text of batches.meta.txt, None for no file
    meta_bytes: bytes | None    # raw bytes instead of text (undecodable), when not None


@st.composite
def cifar_cases(draw):
    records = draw(st.integers(0, 3))
    names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
    meta = draw(st.one_of(st.none(),
                          st.lists(names, min_size=8, max_size=12).map("\n".join),
                          st.just("\n".join(("airplane", "automobile", "bird", "cat", "deer",
                                             "dog", "frog", "horse", "ship", "truck")))))
    return CifarCase(draw(st.sampled_from(("train", "test"))),
                     draw(st.sampled_from(CIFAR_BATCHES + ("batches.meta.txt",))),
                     records, tuple(draw(st.lists(st.sampled_from((0, 1, 9, 9, 10, 200, 255)),
                                                  min_size=records, max_size=records))),
                     draw(damage()), draw(st.binary(max_size=40)), meta,
                     draw(st.one_of(st.none(), st.binary(max_size=40))))


def run_cifar(case: CifarCase, workdir: Path) -> str:
    """Load a CIFAR-10 split from a batches directory with one file damaged."""
    from cnnzoo.data import load_dataset

    rng = np.random.default_rng(case.records)
    folder = workdir / "cifar-10-batches-bin"
    folder.mkdir()
    for name in CIFAR_BATCHES:
        if name == case.fuzzed:
            pixels = rng.integers(0, 256, (case.records, RECORD - 1), dtype=np.uint8)
            data = np.concatenate([np.array(case.labels, dtype=np.uint8)[:, None], pixels], 1)
            raw = apply_damage(data.tobytes(), case.damage) if case.records else case.random_bytes
        else:
            data = rng.integers(0, 256, (2, RECORD), dtype=np.uint8)
            data[:, 0] %= 10
            raw = data.tobytes()
        (folder / name).write_bytes(raw)
    if case.meta_bytes is not None and case.fuzzed == "batches.meta.txt":
        (folder / "batches.meta.txt").write_bytes(case.meta_bytes)
    elif case.meta is not None:
        (folder / "batches.meta.txt").write_text(case.meta, encoding="utf-8")
    outcome, dataset = answered(lambda: load_dataset("cifar10", case.split, data_dir=workdir,
                                                     download=False))
    if outcome == "loaded":
        check_dataset(dataset)
        if dataset.image_size != (3, 32, 32) or dataset.num_classes != 10:
            raise Defect(f"CIFAR-10 loaded as {dataset.image_size}, {dataset.num_classes} "
                         "classes")
    return outcome


# --- target: image folder ------------------------------------------------------------------------

MODES = {"PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),
         "JPEG": ("L", "RGB", "CMYK")}
OTHER_FORMATS = ("GIF", "BMP", "TIFF", "WEBP", "PPM", "ICO", "EPS")
SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".txt", "", ".png.bak")
CLASS_NAMES = ("cat", "dog", "eel", "a b", "é", ".hidden", "train", "x" * 40, "-1", "0")


@dataclass
class ImageFile:
    name: str
    suffix: str
    content: str                # png, jpeg, other, junk, empty, folder
    fmt: str
    mode: str
    size: tuple[int, int]       # (width, height)
    seed: int
    damage: tuple
    junk: bytes


@dataclass
class FolderCase:
    layout: str                 # flat, train-test, train-val, test-only
    classes: dict               # class name -> [ImageFile]
    held_out: dict              # for train-test: class name -> [ImageFile]
    split: str
    options: dict


@st.composite
def clean_image_files(draw, size):
    content = draw(st.sampled_from(("png", "jpeg")))
    fmt = {"png": "PNG", "jpeg": "JPEG"}[content]
    return ImageFile(draw(st.sampled_from(("a", "b", "sub/c"))),
                     {"png": ".png", "jpeg": ".jpg"}[content], content, fmt,
                     draw(st.sampled_from(MODES[fmt])), size, draw(st.integers(0, 1000)),
                     ("none", 0, b"\0"), b"")


@st.composite
def image_files(draw):
    content = draw(st.sampled_from(("png", "png", "png", "jpeg", "jpeg", "other", "junk",
                                    "empty", "folder")))
    fmt = {"png": "PNG", "jpeg": "JPEG"}.get(content) or draw(st.sampled_from(OTHER_FORMATS))
    modes = MODES.get(fmt, ("RGB", "L"))
    suffix = ({"png": ".png", "jpeg": ".jpg"}.get(content, ".png")
              if draw(st.integers(0, 3)) else draw(st.sampled_from(SUFFIXES)))
    damaged = draw(st.integers(0, 3)) == 0
    return ImageFile(draw(st.sampled_from(("a", "b", "c", ".x", "sub/d", "é"))), suffix, content,
                     fmt, draw(st.sampled_from(modes)),
                     (draw(st.sampled_from((1, 2, 5, 8))), draw(st.sampled_from((1, 3, 8)))),
                     draw(st.integers(0, 1000)),
                     draw(damage()) if damaged else ("none", 0, b"\0"),
                     draw(st.binary(max_size=40)))


@st.composite
def folder_cases(draw):
    clean = draw(st.integers(0, 2)) == 0  # a third of the folders hold only good images
    size = (draw(st.sampled_from((1, 4, 7))), draw(st.sampled_from((1, 5))))

    def classes(min_size):
        names = draw(st.lists(st.sampled_from(CLASS_NAMES[:4] if clean else CLASS_NAMES),
                              min_size=min_size, max_size=3, unique=True))
        files = clean_image_files(size) if clean else image_files()
        return {name: draw(st.lists(files, min_size=1 if clean or draw(st.integers(0, 9))
                                    else 0, max_size=4)) for name in names}

    layout = draw(st.sampled_from(("flat", "flat", "train-test", "train-val", "test-only")))
    options = {}
    if clean:
        return FolderCase(layout, classes(2), classes(1) if layout != "flat" else {},
                          draw(st.sampled_from(("train", "test"))), options)
    if draw(st.booleans()):
        options["image_size"] = draw(st.sampled_from(((4, 4), (1, 1), (3, 5), (0, 4), (4,),
                                                      "4,4", (4.0, 4))))
    if draw(st.integers(0, 3)) == 0:
        options["holdout"] = draw(st.sampled_from((0.5, 0.9, 0.0, 1.0, -0.2, 2, "0.2",
                                                   float("nan"))))
    if draw(st.integers(0, 3)) == 0:
        options["seed"] = draw(st.sampled_from((0, 1, 7, -1, 1.5, 2**70)))
    return FolderCase(layout, classes(0), classes(0) if layout != "flat" else {},
                      draw(st.sampled_from(("train", "test"))), options)


def _encode(spec: ImageFile) -> bytes:
    from PIL import Image

    if spec.content == "junk":
        return spec.junk
    if spec.content == "empty":
        return b""
    rng = np.random.default_rng(spec.seed)
    width, height = spec.size
    if spec.mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (height, width)).astype(np.uint16))
    else:
        channels = {"1": 1, "L": 1, "P": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4}[spec.mode]
        array = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        base = Image.fromarray(array[..., 0] if channels == 1 else array)  # L, LA, RGB, RGBA
        image = base.convert(spec.mode) if base.mode != spec.mode else base
    buffer = io.BytesIO()
    fmt = spec.fmt
    if fmt in ("GIF", "BMP", "PPM", "ICO", "EPS", "WEBP") and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    image.save(buffer, format=fmt)
    return apply_damage(buffer.getvalue(), spec.damage)


def _write_class_files(folder: Path, files) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, spec in enumerate(files):
        path = folder / f"{spec.name}{index}{spec.suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if spec.content == "folder":
            path.mkdir(exist_ok=True)
        else:
            path.write_bytes(_encode(spec))


def run_folder(case: FolderCase, workdir: Path) -> str:
    """Load one split of an image folder built from the case."""
    from cnnzoo.data import load_dataset

    root = workdir / "pictures"
    root.mkdir()
    if case.layout == "flat":
        tops = {root: case.classes}
    else:
        held = "val" if case.layout == "train-val" else "test"
        tops = {root / held: case.held_out}
        if case.layout != "test-only":
            tops[root / "train"] = case.classes
    for top, classes in tops.items():
        top.mkdir(exist_ok=True)
        for name, files in classes.items():
            _write_class_files(top / name, files)
    outcome, dataset = answered(lambda: load_dataset("folder", case.split, data_dir=root,
                                                     **case.options))
    if outcome == "loaded":
        check_dataset(dataset)
        written = sum(len(files) for classes in tops.values() for files in classes.values())
        if len(dataset) > written:
            raise Defect(f"{len(dataset)} images loaded from {written} files")
    return outcome


# --- target: the command line --------------------------------------------------------------------

JUNK_TOKENS = ("", "-", "--", "---", "-x", "--nope", "=", "--=", "0", "-1", "1e9", "nan", "inf",
               "3,224,224", "1,28,28", "8,3,32,32", "0,1,1", "a,b,c", "1,,2", "²,1,1", "٣,٣,٣",
               "1_0,2,3", " 3, 4 ,5", "99999999999999999999", "3.5", "é", "\x00", "a\nb",
               "%s", "{}", "--help", "-h", "--version", "lenet5_d2l", "resnet18", "nope_net",
               "fashion-mnist", "synthetic", "cifar10", "folder", "cpu", "cuda", "cuda:x", "meta",
               "5,5", "5", "1,2,3")


def _cli_vocabulary():
    """Subcommand names, option strings and choices of the real parser, by subcommand path."""
    from cnnzoo.cli import build_parser

    vocabulary: dict[tuple[str, ...], list[str]] = {}

    def walk(parser, path):
        words = []
        for action in parser._actions:
            words += list(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    words.append(name)
                    walk(sub, path + (name,))
            elif action.choices:
                words += [str(choice) for choice in action.choices]
        vocabulary[path] = words

    walk(build_parser(), ())
    return vocabulary


_VOCABULARY = None


@st.composite
def cli_cases(draw):
    global _VOCABULARY
    if _VOCABULARY is None:
        _VOCABULARY = _cli_vocabulary()
    paths = [path for path in _VOCABULARY if path]
    path = draw(st.sampled_from(paths)) if draw(st.integers(0, 9)) else ()
    words = sorted(set(_VOCABULARY[path]) | set(_VOCABULARY[()]))
    flags = [word for word in words if word.startswith("-")] or ["--help"]
    value = st.one_of(st.sampled_from(JUNK_TOKENS), SIZE_LISTS, SIZE_LISTS,
                      st.text(max_size=8), st.integers(-5, 300).map(str))
    single = st.one_of(st.sampled_from(words), value).map(lambda token: [token])
    pair = st.tuples(st.sampled_from(flags), value).map(list)  # a flag and a value for it
    joined = st.tuples(st.sampled_from(flags), value).map(lambda fv: [f"{fv[0]}={fv[1]}"])
    items = draw(st.lists(st.one_of(single, pair, pair, joined), max_size=6))
    if "--input-size" in flags and draw(st.booleans()):  # the one value parsed by hand
        items.insert(draw(st.integers(0, len(items))), ["--input-size", draw(SIZE_LISTS)])
    return list(path) + [token for item in items for token in item]


# --input-size-like values: numbers, unicode digits, blanks, signs, words; mostly 3 or 4 of them
_SIZE_PARTS = st.one_of(st.integers(-2, 300).map(str),
                        st.sampled_from(("²", "٣", "", " 3", "1.5", "x", "0x10", "1_000", "+4",
                                         "-0", "1e3")))
SIZE_LISTS = st.one_of(st.lists(_SIZE_PARTS, min_size=3, max_size=4),
                       st.lists(_SIZE_PARTS, min_size=1, max_size=5)).map(",".join)


def validate_namespace(args) -> None:
    """What the commands check before loading data or building models."""
    from cnnzoo.cli._args import parse_input_size
    from cnnzoo.cli.show import parse_unit
    from cnnzoo.data import canonical_name
    from cnnzoo.models import model_info

    command = getattr(args, "command", None)
    if getattr(args, "input_size", None) is not None:
        parse_input_size(args.input_size, batch=command == "summary")
    if getattr(args, "unit", None) is not None:
        parse_unit(args.unit)
    for attribute in ("model", "name"):
        value = getattr(args, attribute, None)
        if isinstance(value, str) and command in ("shapes", "summary", "train", "export"):
            model_info(value)
    if command in ("train", "bench") and isinstance(getattr(args, "data", None), str):
        canonical_name(args.data)
    if command == "data":
        canonical_name(args.name)


def run_cli(tokens: list[str], workdir: Path) -> str:
    """Parse the tokens; a Namespace then goes through the commands' early checks."""
    from cnnzoo.cli import build_parser

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                time_limit(CASE_SECONDS):
            args = build_parser().parse_args(tokens)
    except _Timeout:
        raise Defect(f"hang: parse_args did not return within {CASE_SECONDS:g} s") from None
    except SystemExit as stop:
        if stop.code == 0:
            return "help"
        message = err.getvalue()
        if stop.code != 2:
            raise Defect(f"SystemExit({stop.code!r}) from parse_args") from None
        if message.count("\n") != 1 or not message.startswith("cnnzoo"):
            raise Defect(f"usage error that is not one line: {message[:300]!r}") from None
        return "error"
    except Exception as error:
        raise Defect(f"parse_args raised {_first_line(error)}") from error
    outcome, _ = answered(lambda: validate_namespace(args))
    return "parsed" if outcome == "loaded" else "error"


# --- targets: a run directory's files -----------------------------------------------------------

# Two runs of lenet5_d2l on a little synthetic data, made once per process: one finished (its
# final weights, which eval and predict read), one stopped after the first of two epochs (only
# its checkpoint, which resume and eval read; SGD with momentum, so the optimiser has state).
_RUNS: dict[str, Path] = {}


def template_runs() -> dict[str, Path]:
    if not _RUNS:
        from cnnzoo.training import train

        root = Path(tempfile.mkdtemp(prefix="cnnzoo-fuzz-runs-"))
        tiny = dict(data="synthetic", train_subset=64, test_subset=32, batch_size=32,
                    device="cpu", progress=False)
        _RUNS["finished"] = train("lenet5_d2l", epochs=1, out=root / "finished",
                                  **tiny).run_dir
        _RUNS["interrupted"] = train("lenet5_d2l", epochs=2, out=root / "interrupted",
                                     momentum=0.9, stop_after_epoch=1, **tiny).run_dir
    return _RUNS


class _Reached(BaseException):
    """Raised by ``_StopAtStart`` when a resumed run has been set up (a BaseException, so that
    no ``except Exception`` of the code under test takes it for a failure)."""


def _stop_at_start():
    from cnnzoo.training.progress import Reporter

    class StopAtStart(Reporter):
        def start(self, info):
            raise _Reached()
    return StopAtStart()


def read_run(folder: Path) -> str:
    """What a user does with a handed-over run directory, each step ending in a result or one
    line: read it back (``load_run``: eval, predict and export start so), then resume it up to
    the moment its first epoch would start (configuration, checkpoint, data, model, optimiser,
    schedule and random state restored, the lock taken). "error" if any step refused."""
    from cnnzoo.training import load_run, train

    outcome, _ = answered(lambda: load_run(folder))

    def resume():
        try:
            train(resume=folder, epochs=50, reporter=_stop_at_start())
        except _Reached:
            return None
        raise Defect("a resumed run trained without starting")  # never reached: start raises
    resumed, _ = answered(resume)
    return "error" if "error" in (outcome, resumed) else "loaded"


def _scratch_copy(kind: str, workdir: Path) -> Path:
    folder = workdir / "run"
    shutil.copytree(template_runs()[kind], folder)
    return folder


JSON_VALUES = st.sampled_from((
    None, True, False, 0, 1, -1, 2, 3, 1.5, 1e-320, 1e308, float("nan"), 2 ** 31, 2 ** 64, "",
    "x", "0.1", "lenet5_d2l", "resnet18", "synthetic", "folder", "in-memory", "cpu", "cuda:7",
    "sgd", "adamw", "modern", [], [1], [1, 28, 28], [3, 32, 32], [0, 28, 28], [1, 60000, 60000],
    [[0.5], [0.5]], [[0.5], [0.0]], ["class0"], {}, {"width": 8}, {"a": 1}))


@dataclass
class ConfigCase:
    kind: str        # finished | interrupted
    edits: list      # (where: "top" | "recipe", key, op: delete | set, value)
    damage: tuple    # then the bytes of the file


@st.composite
def config_cases(draw):
    import dataclasses as dc

    from cnnzoo.training.recipes import Recipe

    top_keys = ["model", "data", "classes", "recipe", "image_size", "input_size", "seed",
                "train_subset", "test_subset", "device", "data_dir", "model_kind",
                "model_args", "normalize_stats", "fast", "amp", "channels_last",
                "cuda_graphs", "compile", "fast_path", "new_key"]
    recipe_keys = [f.name for f in dc.fields(Recipe)] + ["mixup"]
    edits = []
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(("top", "recipe", "recipe")))
        key = draw(st.sampled_from(top_keys if where == "top" else recipe_keys))
        op = draw(st.sampled_from(("set", "set", "set", "delete")))
        edits.append((where, key, op, draw(JSON_VALUES) if op == "set" else None))
    kinds = ("none",) * 6 + MUTATIONS  # most cases damage the values, some the bytes
    return ConfigCase(draw(st.sampled_from(("finished", "interrupted"))), edits,
                      draw(damage(kinds)))


def run_config(case: ConfigCase, workdir: Path) -> str:
    folder = _scratch_copy(case.kind, workdir)
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for where, key, op, value in case.edits:
        target = config if where == "top" else config.get("recipe")
        if not isinstance(target, dict):
            continue
        if op == "delete":
            target.pop(key, None)
        else:  # a copy: the pool's lists and dicts are shared between cases
            target[key] = json.loads(json.dumps(value))
    path.write_bytes(apply_damage(json.dumps(config, indent=2).encode(), case.damage))
    return read_run(folder)


@dataclass
class CheckpointCase:
    entry: str       # the entry changed: model | optimizer | scheduler | epoch | rng_cpu | ...
    op: str          # delete | set | tensor | state (into the optimiser's or model's insides)
    value: object
    digest: bool     # written with its digest (as cnnzoo writes) or without (read as it is)
    damage: tuple    # then the bytes of the file


TENSORS = st.sampled_from(("zeros1", "zeros7u8", "nan_like", "shape3", "int_like", "empty",
                           "huge_like", "bool_like"))


@st.composite
def checkpoint_cases(draw):
    entry = draw(st.sampled_from(("model", "optimizer", "scheduler", "epoch", "rng_cpu",
                                  "extra", "sha256")))
    op = draw(st.sampled_from(("delete", "set", "tensor", "state", "state")))
    value = draw(JSON_VALUES) if op == "set" else draw(TENSORS)
    kinds = ("none",) * 6 + MUTATIONS
    return CheckpointCase(entry, op, value, draw(st.booleans()), draw(damage(kinds)))


def _tensor(kind: str, like):
    import torch

    like = like if hasattr(like, "shape") else torch.zeros(3)
    return {"zeros1": lambda: torch.zeros(1), "zeros7u8": lambda: torch.zeros(7, dtype=torch.uint8),
            "nan_like": lambda: torch.full_like(like.float(), float("nan")),
            "shape3": lambda: torch.zeros(3), "int_like": lambda: like.to(torch.int64),
            "empty": lambda: torch.zeros(0), "huge_like": lambda: torch.full_like(
                like.float(), 1e38) * 10, "bool_like": lambda: like.bool()}[kind]()


def run_checkpoint(case: CheckpointCase, workdir: Path) -> str:
    import io as io_module

    import torch

    from cnnzoo.training.checkpoint import DIGEST, digest

    folder = _scratch_copy("interrupted", workdir)
    path = folder / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    state.pop(DIGEST, None)
    entry, op = case.entry, case.op
    if op == "delete":
        state.pop(entry, None)
    elif op == "set":
        state[entry] = case.value
    elif op == "tensor":
        state[entry] = _tensor(case.value, state.get(entry))
    elif entry == "model" or entry not in ("optimizer", "scheduler"):  # a tensor inside
        key = sorted(state["model"])[len(case.value) % len(state["model"])]
        state["model"][key] = _tensor(case.value, state["model"][key])
    elif entry == "optimizer":
        inner = state["optimizer"]["state"]
        index = sorted(inner)[len(case.value) % len(inner)]
        inner[index] = {"momentum_buffer": _tensor(case.value, inner[index]["momentum_buffer"])}
    else:
        state["scheduler"] = {"last_epoch": _tensor(case.value, None)}
    if case.digest:
        state[DIGEST] = digest(state)
    buffer = io_module.BytesIO()
    torch.save(state, buffer)
    path.write_bytes(apply_damage(buffer.getvalue(), case.damage))
    return read_run(folder)


@dataclass
class MetricsCase:
    kind: str
    header: list     # the columns written
    rows: list       # each a list of cell texts
    damage: tuple


CELLS = st.one_of(st.sampled_from(("1", "2", "0", "-1", "0.5", "nan", "inf", "-inf", "1e999",
                                   "", "x", "1.5", "3", "99", " 1", "1,2", '"', "\x00", "é")),
                  st.text(max_size=6))


@st.composite
def metrics_cases(draw):
    from cnnzoo.training.rundir import METRIC_FIELDS

    header = list(METRIC_FIELDS)
    if draw(st.integers(0, 3)) == 0:
        header = draw(st.lists(st.sampled_from((*METRIC_FIELDS, "extra", "", "epoch")),
                               max_size=8))
    count = draw(st.integers(0, 4))
    rows = []
    for epoch in range(1, count + 1):
        row = [str(epoch), "0.5", "0.5", "0.5", "1.0", "100.0"][:len(header)]
        row += ["1"] * (len(header) - len(row))
        for _ in range(draw(st.integers(0, 2))):
            if row:
                row[draw(st.integers(0, len(row) - 1))] = draw(CELLS)
        if draw(st.integers(0, 9)) == 0:
            row = row[:draw(st.integers(0, len(row)))]
        rows.append(row)
    kinds = ("none",) * 6 + MUTATIONS
    return MetricsCase(draw(st.sampled_from(("finished", "interrupted"))), header, rows,
                       draw(damage(kinds)))


def run_metrics(case: MetricsCase, workdir: Path) -> str:
    import csv

    folder = _scratch_copy(case.kind, workdir)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(case.header)
    writer.writerows(case.rows)
    (folder / "metrics.csv").write_bytes(apply_damage(buffer.getvalue().encode(), case.damage))
    return read_run(folder)


@dataclass
class LockCase:
    form: str        # what .lock is: regular, symlink-file, symlink-missing, symlink-devnull,
                     # hardlink, fifo, folder
    content: bytes   # of a regular lock file
    held: bool       # another process holds the lock while this one tries


@st.composite
def lock_cases(draw):
    form = draw(st.sampled_from(("regular", "regular", "regular", "symlink-file",
                                 "symlink-missing", "symlink-devnull", "hardlink", "fifo",
                                 "folder")))
    content = draw(st.one_of(st.just(b""), st.integers(0, 2 ** 40).map(lambda n: str(n).encode()),
                             st.sampled_from((b"12345\n", b" 7 ", b"pid 3", b"\x00", b"-1",
                                              b"1" * 40, b"notes\n" * 20)),
                             st.binary(max_size=40)))
    return LockCase(form, content, form == "regular" and draw(st.integers(0, 4)) == 0)


def run_lock(case: LockCase, workdir: Path) -> str:
    """Take a run directory's lock (as ``train --resume`` and ``train --out`` do) with its
    ``.lock`` as the case has it; the file it may point to must come out unchanged, and a lock
    that is not cnnzoo's must be refused."""
    import fcntl

    from cnnzoo.training.rundir import RunLock

    folder = workdir / "run"
    folder.mkdir()
    lock = folder / ".lock"
    victim = workdir / "precious.txt"
    victim.write_bytes(b"the user's file\n")
    if case.form == "regular":
        lock.write_bytes(case.content)
    elif case.form == "symlink-file":
        lock.symlink_to(victim)
    elif case.form == "symlink-missing":
        lock.symlink_to(workdir / "nothing-here")
    elif case.form == "symlink-devnull":
        lock.symlink_to("/dev/null")
    elif case.form == "hardlink":
        os.link(victim, lock)
    elif case.form == "fifo":
        os.mkfifo(lock)
    else:
        lock.mkdir()
    holder = None
    if case.held:
        holder = os.open(lock, os.O_RDWR)
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def take():
        with RunLock(folder):
            return None
    try:
        outcome, _ = answered(take)
    finally:
        if holder is not None:
            os.close(holder)
    if victim.read_bytes() != b"the user's file\n":
        raise Defect(f"taking the lock changed the file its .lock ({case.form}) names")
    # what cnnzoo writes there: nothing yet, or a pid (at most 32 bytes)
    ours = case.form == "regular" and len(case.content) <= 32 and (
        not case.content.strip() or case.content.strip().isdigit())
    if outcome == "loaded" and not (ours and not case.held):
        raise Defect(f"a lock that is not cnnzoo's to take ({case.form}, held={case.held}) "
                     f"was taken")
    if outcome == "error" and ours and not case.held:
        raise Defect("cnnzoo's own lock file, free, was refused")
    return outcome


# --- shared checks and the driver ----------------------------------------------------------------

def check_dataset(dataset) -> None:
    """The invariants every loaded data set keeps."""
    images, labels = dataset.images, dataset.labels
    if len(dataset) < 1 or images.dim() != 4 or min(images.shape) < 1:
        raise Defect(f"a data set of images {tuple(images.shape)} was returned")
    if int(labels.min()) < 0 or int(labels.max()) >= dataset.num_classes:
        raise Defect(f"labels outside 0..{dataset.num_classes - 1} were returned")


@dataclass
class Target:
    name: str
    strategy: Callable
    run: Callable
    outcomes: tuple[str, ...]


TARGETS = {
    "idx": Target("idx", idx_cases, run_idx, ("loaded", "error")),
    "cifar": Target("cifar", cifar_cases, run_cifar, ("loaded", "error")),
    "folder": Target("folder", folder_cases, run_folder, ("loaded", "error")),
    "cli": Target("cli", cli_cases, run_cli, ("parsed", "help", "error")),
    "config": Target("config", config_cases, run_config, ("loaded", "error")),
    "checkpoint": Target("checkpoint", checkpoint_cases, run_checkpoint, ("loaded", "error")),
    "metrics": Target("metrics", metrics_cases, run_metrics, ("loaded", "error")),
    "lock": Target("lock", lock_cases, run_lock, ("loaded", "error")),
}


@contextlib.contextmanager
def private_data_cache():
    """Point cnnzoo's data cache at an empty folder, so nothing outside the case is found."""
    folder = tempfile.mkdtemp(prefix="cnnzoo-fuzz-cache-")
    old = os.environ.get("CNNZOO_DATA")
    os.environ["CNNZOO_DATA"] = folder
    try:
        yield Path(folder)
    finally:
        if old is None:
            os.environ.pop("CNNZOO_DATA", None)
        else:
            os.environ["CNNZOO_DATA"] = old
        shutil.rmtree(folder, ignore_errors=True)


def run_one(target: Target, case) -> str:
    """Run one case in a fresh scratch folder; returns its outcome or raises ``Defect``."""
    with tempfile.TemporaryDirectory(prefix=f"cnnzoo-fuzz-{target.name}-") as scratch:
        return target.run(case, Path(scratch))


def defect_kind(message: str) -> str:
    """Defects told apart by what went wrong, not by the input quoted in the message."""
    return message.split("'")[0].split('"')[0].strip()[:120]


@dataclass
class Tally:
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    defects: dict = field(default_factory=dict)  # kind -> (count, example case, a message)


def campaign(name: str, cases: int, seed: int, last_case: Path | None = None) -> Tally:
    """Run ``cases`` cases of one target in this process and tally them."""
    target = TARGETS[name]
    tally = Tally()

    @hypothesis_seed(seed)
    @settings(max_examples=cases, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(target.strategy())
    def one(case):
        if last_case is not None:
            last_case.write_text(repr(case)[:4000])
        tally.cases += 1
        try:
            tally.outcomes[run_one(target, case)] += 1
        except Defect as defect:
            tally.outcomes["defect"] += 1
            kind = defect_kind(str(defect))
            count, example, message = tally.defects.get(kind, (0, repr(case)[:600],
                                                               str(defect)[:300]))
            tally.defects[kind] = (count + 1, example, message)

    with private_data_cache():
        one()
    return tally


def _worker(args) -> int:
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    tally = campaign(args.worker, args.cases, args.seed, Path(args.last_case))
    result = dict(cases=tally.cases, outcomes=dict(tally.outcomes),
                  defects=[dict(kind=k, count=c, example=e, message=m)
                           for k, (c, e, m) in tally.defects.items()],
                  seconds=time.perf_counter() - start)
    Path(args.result).write_text(json.dumps(result))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000, help="cases per target (5000)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="targets run at once, each in a process of its own (1)")
    parser.add_argument("--target", action="append", choices=tuple(TARGETS),
                        help="run only this target (repeatable; default all)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (0)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--last-case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args)

    import torch

    print(f"cnnzoo bad-input campaign: {args.cases} cases per target, seed {args.seed}; "
          f"python {platform.python_version()}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPU cores")
    print(f"{'target':<11}{'cases':>7}  {'outcomes':<40}{'defects':>8}{'seconds':>9}")
    found = 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    from concurrent.futures import ThreadPoolExecutor

    def run_target(name: str):
        """One target's campaign in a child process: (its result, or None, and the time)."""
        with tempfile.TemporaryDirectory(prefix="cnnzoo-fuzz-") as scratch:
            result_path, last_path = Path(scratch) / "result.json", Path(scratch) / "last"
            start = time.perf_counter()
            process = subprocess.run(
                [sys.executable, __file__, "--worker", name, "--cases", str(args.cases),
                 "--seed", str(args.seed), "--result", str(result_path),
                 "--last-case", str(last_path)], env=env, stderr=subprocess.PIPE, text=True)
            seconds = time.perf_counter() - start
            if process.returncode != 0 or not result_path.exists():
                last = last_path.read_text() if last_path.exists() else "?"
                how = (f"killed by signal {-process.returncode}" if process.returncode < 0
                       else f"exit status {process.returncode}")
                return None, f"interpreter died ({how}); last case: {last[:300]}\n" \
                             f"{process.stderr[-2000:]}", seconds
            return json.loads(result_path.read_text()), "", seconds

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        runs = {name: pool.submit(run_target, name) for name in args.target or TARGETS}
        for name, future in runs.items():  # in order, each as soon as it and those before end
            result, failure, seconds = future.result()
            if result is None:
                print(f"{name:<11}{'?':>7}  {failure}")
                found += 1
                continue
            outcomes = ", ".join(f"{key} {value}"
                                 for key, value in sorted(result["outcomes"].items()))
            defects = sum(d["count"] for d in result["defects"])
            found += len(result["defects"])
            print(f"{name:<11}{result['cases']:>7}  {outcomes:<40}{defects:>8}{seconds:>9.1f}",
                  flush=True)
            for defect in result["defects"]:
                print(f"    defect x{defect['count']}: {defect['kind']}")
                print(f"        e.g. {defect['message'][:300]!r}")
                print(f"        from {defect['example'][:300]}")
    print(f"distinct defects: {found}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
