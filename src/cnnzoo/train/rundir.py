"""The run directory: what a training run leaves behind, and how it is read back.

    config.json        the resolved configuration (model, data, recipe, seed, device, ...)
    metrics.csv        one row per finished epoch
    curves.png         loss and accuracies against epochs (redrawn at most every 20 s, and at the end)
    checkpoint.pt      model, optimizer, scheduler, epoch and RNG states (weights_only loadable)
    model.safetensors  the final weights (removed while a finished run is trained further)

A lock file keeps two processes from writing one directory at once.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

from ..data.catalog import canonical_name
from ..errors import CnnzooError
from .checkpoint import atomic_write_text, load_weights, read_json

CONFIG, METRICS, CURVES = "config.json", "metrics.csv", "curves.png"
CHECKPOINT, WEIGHTS, LOCK = "checkpoint.pt", "model.safetensors", ".lock"
METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "test_acc", "seconds", "examples_per_sec")


def rate_text(examples_per_sec: float) -> str:
    """A throughput as shown: "12,345", or "—" where no step was timed (NaN)."""
    return f"{examples_per_sec:,.0f}" if math.isfinite(examples_per_sec) else "—"


class RunLock:
    """An exclusive lock on a run directory: the file ``.lock``, held with the operating system's
    file lock (``flock``; ``msvcrt.locking`` on Windows) and holding the owner's pid for messages.

    The operating system drops the lock when its process ends, even by SIGKILL, so a killed run
    can be resumed at once and a reused pid never looks like a live owner; a lock held by a live
    process makes a second run refuse instead of mixing its files with the first's. On taking
    the lock, temporary files that a killed writer left behind are removed.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK
        self._fd: int | None = None

    def __enter__(self):
        for _ in range(10):  # a holder that is just leaving may unlink the file we opened
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise CnnzooError(f"cannot write in {self.path.parent}: {error.strerror}"
                                  ) from None
            try:
                held = not _try_lock(fd)
            except OSError as error:
                os.close(fd)
                raise CnnzooError(f"cannot lock {self.path}: {error.strerror or error}"
                                  ) from None
            if held:
                os.close(fd)
                owner = self._owner()
                who = f"pid {owner}" if owner else "pid unknown"
                raise CnnzooError(f"{self.path.parent} is in use by another cnnzoo process "
                                  f"({who}); wait for it to finish or choose another --out")
            if _same_file(fd, self.path):
                break
            os.close(fd)
        else:
            raise CnnzooError(f"cannot lock {self.path.parent}: its lock file keeps changing")
        self._fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        remove_stale_temporaries(self.path.parent)
        return self

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc):
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if fcntl is not None:  # unlink while still holding it, so no one locks a dying file
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(fd)
        else:  # Windows cannot remove a file that is open
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without waiting: False when another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as error:
        if isinstance(error, BlockingIOError) or error.errno in (errno.EACCES, errno.EAGAIN,
                                                                 errno.EDEADLK):
            return False
        raise
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


# Files the training loop writes, whose temporaries (".NAME.XXXX.tmp") only a lock holder makes.
RUN_FILES = (CONFIG, METRICS, CURVES, CHECKPOINT, WEIGHTS)


def is_run_file(name: str) -> bool:
    """Whether a file of that name is one a run writes: one of ``RUN_FILES``, a temporary of
    one, or the lock."""
    return name in RUN_FILES or name == LOCK or any(
        name.startswith(f".{run_file}.") and name.endswith(".tmp") for run_file in RUN_FILES)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of ``RUN_FILES`` that a killed run left in ``folder``.

    Only the holder of the folder's lock writes those files, so while it is held no temporary of
    theirs can belong to a live writer. Returns what was removed.
    """
    removed = []
    for name in RUN_FILES:
        for path in Path(folder).glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def write_metrics(folder: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row[k] for k in METRIC_FIELDS})
    atomic_write_text(Path(folder) / METRICS, buffer.getvalue())


def read_metrics(folder: Path) -> list[dict]:
    """The rows of ``metrics.csv`` (one per finished epoch), [] when there is none yet."""
    path = Path(folder) / METRICS
    if not path.exists():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in METRIC_FIELDS if name not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"its header lacks {', '.join(missing)}")
            return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
                    for row in reader]
    except (OSError, ValueError, TypeError, csv.Error) as error:  # edited or damaged by hand
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise CnnzooError(f"{path} is damaged ({first}); repair it, or remove it to go on "
                          f"without the earlier epochs' rows") from None


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run with finished epochs (a checkpoint, final weights or rows
    of metrics), not merely the configuration of one that ended before its first epoch."""
    folder = Path(folder)
    return ((folder / CHECKPOINT).exists() or (folder / WEIGHTS).exists()
            or bool(read_metrics(folder)))


def _is_size(value) -> bool:
    return (isinstance(value, list) and len(value) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value))


# what reading a run back needs from its config.json: key, what it is, the check
CONFIG_FIELDS = (
    ("model", "a model name", lambda v: isinstance(v, str)),
    ("data", "a data set name", lambda v: isinstance(v, str)),
    ("classes", "a list of class names",
     lambda v: isinstance(v, list) and bool(v) and all(isinstance(c, str) for c in v)),
    ("recipe", "a recipe object", lambda v: isinstance(v, dict)),
    ("image_size", "an image_size [C, H, W]", _is_size),
    ("input_size", "an input_size [C, H, W]", _is_size),
)


def data_options(config: dict) -> dict:
    """The options a run's data set is loaded with, the same wherever the run is read: a folder
    of images is read at the run's ``--resize`` size, so that images of several sizes do."""
    resize = (config.get("recipe") or {}).get("resize")
    return {"image_size": (resize, resize)} if config["data"] == "folder" and resize else {}


def read_config(folder: Path) -> dict:
    """A run's ``config.json``, checked against ``CONFIG_FIELDS`` (model and data set names,
    class names, recipe, image and input sizes); a damaged or foreign file raises one
    ``CnnzooError`` line instead of a KeyError later."""
    path = Path(folder) / CONFIG
    config = read_json(path)
    if not isinstance(config, dict):
        raise CnnzooError(f"{path} is not a cnnzoo run configuration: it holds a JSON "
                          f"{type(config).__name__}, not an object")
    for key, what, ok in CONFIG_FIELDS:
        if not ok(config.get(key)):
            raise CnnzooError(f"{path} is not a cnnzoo run configuration: it lacks {what} "
                              f"({key!r})")
    # runs of older versions kept the name as typed ("FashionMNIST"); every use compares the
    # canonical one
    config["data"] = canonical_name(config["data"])
    return config


@dataclass
class Run:
    """A finished (or interrupted) run read back from its directory."""

    path: Path
    config: dict
    model: torch.nn.Module
    history: list[dict]

    @property
    def classes(self) -> list[str]:
        return self.config["classes"]


DATA_ARGUMENTS = ("num_classes", "in_channels", "input_size")  # set from the data, not by hand


def model_arguments(name: str) -> dict[str, object]:
    """The builder arguments of a registered model that a user may set (name -> default), e.g.
    ``{"width": 32}`` for resnet9_fmnist; those the data decides are left out."""
    import inspect

    from ..models import model_info

    parameters = inspect.signature(model_info(name).builder).parameters
    return {key: p.default for key, p in parameters.items()
            if key not in DATA_ARGUMENTS and p.default is not inspect.Parameter.empty}


def check_model_args(name: str, model_args: dict | None) -> None:
    """A one-line CnnzooError for a builder argument the model does not take."""
    allowed = model_arguments(name)
    for key in model_args or {}:
        if key not in allowed:
            takes = ", ".join(f"{k} (default {v!r})" for k, v in allowed.items()) or "none"
            raise CnnzooError(f"{name} takes no model argument {key!r}; it takes: {takes}")


def build_model(config: dict) -> torch.nn.Module:
    """The model a run configuration describes, freshly initialised. A model too large to hold
    (the flattened features of a huge input size feeding a Linear layer) is a one-line
    ``CnnzooError``."""
    import inspect

    from ..models import get_model, model_info

    builder = model_info(config["model"]).builder
    model_args = config.get("model_args") or {}  # absent in older runs
    check_model_args(config["model"], model_args)
    kwargs = dict(model_args, num_classes=len(config["classes"]),
                  in_channels=config["input_size"][0])
    if "input_size" in inspect.signature(builder).parameters:
        kwargs["input_size"] = tuple(config["input_size"])
    return get_model(config["model"], **kwargs)  # too large for memory: get_model says so


def load_run(folder) -> Run:
    """Read a run directory back: its configuration, metrics and model with trained weights.

    The final ``model.safetensors`` is used when present, else the last checkpoint's weights.
    """
    from .checkpoint import load_checkpoint, load_state

    folder = Path(folder)
    if not folder.is_dir():
        problem = "a file, not a folder" if folder.exists() else "no such folder"
        raise CnnzooError(f"{folder} is not a run directory ({problem})")
    if not (folder / CONFIG).exists():
        raise CnnzooError(f"{folder} is not a run directory (no {CONFIG})")
    config = read_config(folder)
    model = build_model(config)
    if (folder / WEIGHTS).exists():
        load_weights(folder / WEIGHTS, model)
    elif (folder / CHECKPOINT).exists():
        state = load_checkpoint(folder / CHECKPOINT)
        load_state(model, state["model"], folder / CHECKPOINT)
    else:
        raise CnnzooError(f"{folder} holds no weights yet (no {WEIGHTS} or {CHECKPOINT})")
    return Run(folder, config, model.eval(), read_metrics(folder))
