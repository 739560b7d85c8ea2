"""Argument parsing shared by several commands.

``--input-size`` is parsed in the command's ``run`` rather than by an argparse ``type=``, so a
bad value gives the one-line ``cnnzoo: error: ...`` of a ``CnnzooError`` instead of argparse's
usage text; ``positive_int``, ``positive_float``, ``seed``, ``device`` and ``user_path`` are
plain argparse types.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys

from ..errors import CnnzooError


def add_input_size(parser, *, batch: bool = False) -> None:
    """``--input-size C,H,W`` (or ``N,C,H,W`` where ``batch``), parsed by ``parse_input_size``."""
    shape = "[N,]C,H,W" if batch else "C,H,W"
    parser.add_argument("--input-size", metavar=shape, default=None,
                        help=f"input size as {shape}, e.g. 3,224,224 (default: the model's own)")


def add_subcommands(parser, dest: str, metavar: str):
    """The subparsers of a command group (``cnnzoo show PICTURE``): the group given without one
    is a one-line usage error that names the choices, as any other missing argument is."""
    subparsers = parser.add_subparsers(dest=dest, metavar=metavar)
    parser.set_defaults(func=lambda args: parser.error(
        f"choose a {metavar}: {', '.join(subparsers.choices)}"))
    return subparsers


DEVICES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device(text: str) -> str:
    """argparse ``type=`` for ``--device``: auto, cpu, cuda, cuda:N or mps (whether the machine
    has it is checked where the command starts working)."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use {DEVICES}")
    return text


def add_device(parser, help: str = "where to compute: auto (CUDA, then MPS, then the CPU; the "
                                    "default), cpu, cuda, cuda:N or mps",
               default: str | None = "auto") -> None:
    """``--device``, checked by ``device``: the same choices and the same message everywhere."""
    parser.add_argument("--device", type=device, default=default, metavar="DEVICE", help=help)


def add_fast_path(parser) -> None:
    """``--compile``, ``--amp``, ``--channels-last`` and ``--cuda-graphs``: how the steps run,
    never what they compute (the recipe stays the same). docs/training.md says which pays on
    which device."""
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model (its warm-up is reported apart)")
    parser.add_argument("--amp", action="store_true",
                        help="bf16 autocast: for GPUs, and CPUs with AMX or AVX512-BF16")
    parser.add_argument("--channels-last", action="store_true",
                        help="NHWC weights and batches (faster for some models, slower for "
                             "others: measure with `cnnzoo bench`)")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="record each training step once as a CUDA graph and replay it "
                             "(CUDA only; frees the step from Python's pace)")


def add_fast(parser) -> None:
    """``--fast``: the fast-path flags chosen by measurement (``training.fastpath``)."""
    parser.add_argument("--fast", action="store_true",
                        help="choose --amp, --channels-last (and --cuda-graphs on a GPU) by "
                             "timing a few steps of each candidate with this model on this "
                             "device; remembered per machine and model")


def warn_amp(device, *, evaluating: bool = False) -> None:
    """Warn (a ``CnnzooWarning``: one line, once per process) when bf16 autocast would be
    emulated here."""
    import warnings

    import torch

    from ..device import amp_warning
    from ..errors import CnnzooWarning

    warning = amp_warning(torch.device(device), evaluating=evaluating)
    if warning:
        warnings.warn(warning, CnnzooWarning, stacklevel=2)


def check_fast_path(args, device) -> None:
    """Refuse, before any work starts, fast-path flags that cannot go together or that the
    device cannot use; warn of those that would slow it down."""
    if getattr(args, "fast", False):
        from ..training.fastpath import check

        check(vars(args), 1)
    if args.amp:
        warn_amp(device)
    if args.cuda_graphs:
        from ..training.step import check_graphs

        check_graphs(device, args.compile)


def parse_input_size(text: str | None, *, batch: bool = False,
                     option: str = "--input-size") -> tuple[int, ...] | None:
    """'3,224,224' -> (3, 224, 224); with ``batch`` also '8,3,224,224'. None stays None.

    Anything else (a word, a zero, too few or too many numbers) raises a one-line
    ``CnnzooError`` that shows the expected form.
    """
    if text is None:
        return None
    from ..geometry import parse_size_text

    return parse_size_text(text, (3, 4) if batch else (3,), name=option)


def add_out(parser, help: str) -> None:
    """``--out FILE`` and ``--force``: a file the command writes, which replaces an existing
    one only with ``--force`` (a link, a device or a run's own file never)."""
    parser.add_argument("--out", type=user_path, metavar="FILE", help=help)
    parser.add_argument("--force", action="store_true",
                        help="replace the --out file if it exists")


def user_path(text: str) -> str:
    """argparse ``type=`` for a file or folder: ``~`` or ``~user`` at its start is that home
    folder, as the shell makes it of a word of its own but not after ``--out=``, so that no
    folder named ``~`` is made here (``--data-dir`` is expanded where data sets are found)."""
    return os.path.expanduser(text)


def positive_int(text: str) -> int:
    """argparse ``type=`` for a whole number of at least 1."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


SEED_LIMIT = 2 ** 64  # torch.manual_seed takes 0 .. 2**64 - 1


def seed(text: str) -> int:
    """argparse ``type=`` for a random seed: a whole number in 0 .. 2**64 - 1."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be 0 .. 2**64 - 1, not {text}")
    return value


def positive_float(text: str) -> float:
    """argparse ``type=`` for a number above 0."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return value


def val_size(text: str) -> int | float:
    """argparse ``type=`` for ``--val``: a whole number of images (0: none) or a fraction in
    (0, 1), read as the library reads ``val=``: an int counts, a float is a fraction (so
    ``1.0`` is refused, not one image)."""
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value >= 0 if isinstance(value, int) else 0 < value < 1:
        return value
    raise argparse.ArgumentTypeError(f"give a number of images (0: none) or a fraction "
                                     f"between 0 and 1, not {text}")


def accuracy(text: str) -> float:
    """argparse ``type=`` for an accuracy: a number above 0 and at most 1."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"an accuracy is at most 1, not {text}")
    return value


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def parse_assignments(items: list[str] | None, types: dict[str, object],
                      option: str) -> dict[str, object]:
    """['erasing=0', 'nesterov=false'] -> {'erasing': 0.0, 'nesterov': False}.

    ``types`` maps each name that may be set to its type (a class, or a union such as
    ``int | None``); an unknown name, a missing ``=`` or a value of the wrong type raises a
    one-line ``CnnzooError`` that names the choices.
    """
    values = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise CnnzooError(f"{option} {item!r}: give NAME=VALUE, e.g. {option} "
                              f"{next(iter(types), 'name')}=1")
        if key not in types:
            choices = f"choose from {', '.join(types)}" if types else "there are none to set"
            raise CnnzooError(f"{option} {item!r}: no such setting {key!r}; {choices}")
        values[key] = _typed(text.strip(), types[key], f"{option} {item!r}")
    return values


def _typed(text: str, kind, where: str):
    kinds = getattr(kind, "__args__", None) or (kind,)
    if type(None) in kinds and text.lower() == "none":
        return None
    for candidate in kinds:
        if candidate is bool:
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
        elif candidate in (int, float):
            try:
                return candidate(text)
            except ValueError:
                continue
        elif candidate is str:
            return text
    words = {bool: "true or false", int: "a whole number", float: "a number", str: "a word"}
    wanted = " or ".join(words.get(k, str(k)) for k in kinds if k is not type(None))
    raise CnnzooError(f"{where}: {text!r} is not {wanted}")


@contextlib.contextmanager
def progress_bars(desc: str):
    """A ``progress(total)`` callback for ``evaluate``: a tqdm bar on standard error when it is
    a terminal (a log file gets the result only), each bar closed when the block ends."""
    bars = []

    def progress(total):
        if not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        bars.append(tqdm(total=total, desc=desc, unit="batch", leave=False, file=sys.stderr))
        return bars[-1].update

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()
