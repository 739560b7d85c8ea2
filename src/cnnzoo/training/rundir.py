"""The run directory: what a training run leaves behind, and how it is read back.

    config.json        the resolved configuration (model, data, recipe, seed, device, ...)
    metrics.csv        one row per finished epoch
    curves.png         loss and accuracies against epochs (redrawn at most every 20 s, and last)
    checkpoint.pt      model, optimizer, scheduler, epoch and RNG states (weights_only loadable)
    model.safetensors  the final weights (removed while a finished run is trained further)
    best.safetensors   the weights of the epoch of best validation accuracy (runs that hold
                       out a validation split)
    events/            TensorBoard's event files (runs with tensorboard=True)

A lock file keeps two processes from writing one directory at once.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import stat
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import torch

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

from .._epoch import eval_acc
from .._io import TEXT_LIMIT, atomic_write_text, read_json, regular_file
from ..data.catalog import IN_MEMORY, canonical_name
from ..errors import CnnzooError
from ..geometry import parse_size
from .checkpoint import load_checkpoint, load_weights, save_checkpoint
from .config import check_record
from .recipes import Recipe

CONFIG, METRICS, CURVES = "config.json", "metrics.csv", "curves.png"
CHECKPOINT, WEIGHTS, LOCK = "checkpoint.pt", "model.safetensors", ".lock"
BEST, EVENTS = "best.safetensors", "events"
# metrics.csv's columns. val_acc is empty in a run without a validation split; test_acc, in one
# with it, is empty but in the last epoch's row (the test set is evaluated once, at the end).
# lr is the learning rate of the epoch's last step, grad_norm the mean over its steps of the
# gradients' L2 norm (before clipping), elapsed the wall seconds from the run's first step to
# the end of this epoch's evaluation (checkpoints of the epochs before included), MLPerf's
# time to train.
METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "val_acc", "test_acc", "lr", "grad_norm",
                 "seconds", "elapsed", "examples_per_sec")
# the columns every metrics.csv must have; the others are read as None where a file lacks them
REQUIRED_METRICS = ("epoch", "train_loss", "train_acc", "test_acc", "seconds",
                    "examples_per_sec")
MAY_BE_EMPTY = ("val_acc", "test_acc", "lr", "grad_norm", "elapsed")


def accuracy_text(row: dict, separator: str = ", ", digits: int = 4) -> str:
    """An epoch's validation and test accuracies, those it has: "val acc 0.8812, test acc
    0.8790"."""
    return separator.join(f"{split} acc {row[f'{split}_acc']:.{digits}f}"
                          for split in ("val", "test")
                          if row.get(f"{split}_acc") is not None) or "not evaluated"


class RunLock:
    """An exclusive lock on a run directory: the file ``.lock``, held with the operating system's
    file lock (``flock``; ``msvcrt.locking`` on Windows) and holding the owner's pid for messages.

    The operating system drops the lock when its process ends, even by SIGKILL, so a killed run
    can be resumed at once and a reused pid never looks like a live owner; a lock held by a live
    process makes a second run refuse instead of mixing its files with the first's. On taking
    the lock, temporary files that a killed writer left behind are removed.

    The lock file is opened without following a link, and written only when it is a regular
    file of one name that holds nothing or a pid: a ``.lock`` that is a link, a FIFO, a device,
    another file's second name or a file of someone else's is refused, never truncated.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK
        self._fd: int | None = None

    def __enter__(self):
        for _ in range(10):  # a holder that is just leaving may unlink the file we opened
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK, 0o644)
            except OSError as error:
                if error.errno == errno.ELOOP:
                    raise CnnzooError(f"{self.path} is a link, not cnnzoo's lock file; remove "
                                      f"it") from error
                raise CnnzooError(f"cannot write in {self.path.parent}: {error.strerror}"
                                  ) from error
            try:
                _check_lock_file(fd, self.path)
            except CnnzooError:
                os.close(fd)
                raise
            try:
                held = not _try_lock(fd)
            except OSError as error:
                os.close(fd)
                raise CnnzooError(f"cannot lock {self.path}: {error.strerror or error}"
                                  ) from error
            if held:
                owner = _read_start(fd).strip()
                os.close(fd)
                who = f"pid {int(owner)}" if owner.isdigit() else "pid unknown"
                raise CnnzooError(f"{self.path.parent} is in use by another cnnzoo process "
                                  f"({who}); wait for it to finish or choose another out=")
            if _same_file(fd, self.path):
                break
            os.close(fd)
        else:
            raise CnnzooError(f"cannot lock {self.path.parent}: its lock file keeps changing")
        self._fd = fd
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)  # the check above read from it
        os.write(fd, str(os.getpid()).encode())
        remove_stale_temporaries(self.path.parent)
        return self

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


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO opens at once, to be refused


def _check_lock_file(fd: int, path: Path) -> None:
    """A one-line ``CnnzooError`` unless the open ``fd`` is a lock file cnnzoo may write: a
    regular file with no other name, empty or holding a pid."""
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        raise CnnzooError(f"{path} is not a regular file (a FIFO, a device or a folder), not "
                          f"cnnzoo's lock file; remove it")
    if status.st_nlink != 1:
        raise CnnzooError(f"{path} is another file's name too (a hard link), not cnnzoo's "
                          f"lock file; remove it")
    content = _read_start(fd) if status.st_size <= 32 else b"x"
    if content.strip() and not content.strip().isdigit():
        raise CnnzooError(f"{path} holds something other than a process id: it is not "
                          f"cnnzoo's lock file; remove it or choose another folder")


def _read_start(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 32)


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
RUN_FILES = (CONFIG, METRICS, CURVES, CHECKPOINT, WEIGHTS, BEST)


def is_run_file(name: str) -> bool:
    """Whether a file of that name is one a run writes: one of ``RUN_FILES``, a temporary of
    one, or the lock."""
    return name in RUN_FILES or name == LOCK or any(
        name.startswith(f".{run_file}.") and name.endswith(".tmp") for run_file in RUN_FILES)


def belongs_to_run(path: Path) -> bool:
    """Whether ``path`` is one of a run directory's own files (``RUN_FILES``, the lock): a
    name a run writes, in a folder that holds a run's configuration."""
    path = Path(path)
    return is_run_file(path.name) and (path.parent / CONFIG).exists()


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
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in METRIC_FIELDS})
    atomic_write_text(Path(folder) / METRICS, buffer.getvalue())


def read_metrics(folder: Path) -> list[dict]:
    """The rows of ``metrics.csv`` (one per finished epoch), [] when there is none yet; an
    empty cell, or a column the file lacks (beyond ``REQUIRED_METRICS``), is None."""
    path = Path(folder) / METRICS
    if not path.exists():
        return []
    regular_file(path, TEXT_LIMIT)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in REQUIRED_METRICS
                       if name not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"its header lacks {', '.join(missing)}")
            rows = []
            for row in reader:
                values = {name: None for name in METRIC_FIELDS}
                values.update({k: None if v == "" and k in MAY_BE_EMPTY else
                               int(v) if k == "epoch" else float(v) for k, v in row.items()})
                rows.append(values)
            return rows
    except (OSError, ValueError, TypeError, csv.Error) as error:  # edited or damaged by hand
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise CnnzooError(f"{path} is damaged ({first}); repair it, or remove it to go on "
                          f"without the earlier epochs' rows") from error


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run with finished epochs (a checkpoint, final weights or rows
    of metrics), not merely the configuration of one that ended before its first epoch."""
    folder = Path(folder)
    return ((folder / CHECKPOINT).exists() or (folder / WEIGHTS).exists()
            or bool(read_metrics(folder)))


def _is_size(value) -> bool:
    try:
        parse_size(value)
    except CnnzooError:
        return False
    return isinstance(value, list)


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
    of images is read at the run's ``resize``, so that images of several sizes do."""
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
    config["recipe"] = asdict(Recipe.from_record(config["recipe"], path))
    check_record(config, path)
    # a record may hold the name as typed ("FashionMNIST"); every use compares the canonical
    # one
    if config["data"] != IN_MEMORY:
        config["data"] = canonical_name(config["data"])
    return config


@dataclass(repr=False)
class Run:
    """A finished (or interrupted) run read back from its directory:
    ``model, config, history = load_run(folder)`` unpacks it."""

    path: Path
    config: dict
    model: torch.nn.Module
    history: list[dict]
    weights: str = "final"  # "best": the best epoch's (load_run(best=True)); a tag: shipped

    @property
    def classes(self) -> list[str]:
        return self.config["classes"]

    def __iter__(self):
        return iter((self.model, self.config, self.history))

    def __repr__(self) -> str:
        last = self.history[-1] if self.history else None
        done = (f"{last['epoch']} of {self.config['recipe'].get('epochs', '?')} epochs, "
                f"{accuracy_text(last)}" if last else "no epoch finished")
        return f"Run({str(self.path)!r}: {self.config['model']} on {self.config['data']}, {done})"


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


def build_model(config: dict, model=None) -> torch.nn.Module:
    """The model a run configuration describes, freshly initialised: a registered one by its
    name, built for the run's classes and input size; for a run of a model of the user's own,
    ``model`` itself (a module is used as it is, a builder is called, ``call_builder``). A
    model too large to hold (the flattened features of a huge input size feeding a Linear
    layer) is a one-line ``CnnzooError``."""
    from ..models import get_model, model_info

    kind = config.get("model_kind", "registry")  # a record may lack it: the default then
    if model is None and kind != "registry":
        raise CnnzooError(f"the run trained a model of your own ({config['model']}), which "
                          f"cnnzoo does not keep as code; it is read from Python only, "
                          f"given the model again")
    model_args = config.get("model_args") or {}  # a record may lack it: none then
    if isinstance(model, torch.nn.Module):
        return model
    if model is not None:
        return call_builder(model, len(config["classes"]), config["input_size"][0], model_args)
    info = model_info(config["model"])
    check_model_args(config["model"], model_args)
    kwargs = dict(model_args, **data_arguments(info.builder, len(config["classes"]),
                                               config["input_size"][0]))
    kwargs.update(info.sized_for(config["input_size"]))
    return get_model(config["model"], **kwargs)  # too large for memory: get_model says so


def data_arguments(builder, num_classes: int, in_channels: int) -> dict:
    """The arguments that fit a builder's model to the data: ``num_classes`` where it takes
    it by name or in ``**kwargs`` (as torchvision's builders pass it on), ``in_channels``
    only where it names it (``**kwargs`` of torchvision's kind refuse it further down)."""
    import inspect

    parameters = inspect.signature(builder).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    kwargs = {}
    if "num_classes" in parameters or open_ended:
        kwargs["num_classes"] = num_classes
    if "in_channels" in parameters:
        kwargs["in_channels"] = in_channels
    return kwargs


def call_builder(builder, num_classes: int, in_channels: int, model_args: dict | None = None
                 ) -> torch.nn.Module:
    """``builder(**model_args)`` with the arguments that fit it to the data
    (``data_arguments``); what it returns must be an ``nn.Module``, and a builder that fails
    is one ``CnnzooError`` line that keeps its error as the cause."""
    import inspect

    name = builder_name(builder)
    try:
        parameters = inspect.signature(builder).parameters
    except (TypeError, ValueError) as error:
        raise CnnzooError(f"model={name}: give a model's name, an nn.Module, or a function "
                          f"that builds one") from error
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for key in model_args or {}:
        if not (open_ended or key in parameters):
            raise CnnzooError(f"{name} takes no model argument {key!r}; it takes: "
                              f"{', '.join(parameters) or 'none'}")
    kwargs = dict(model_args or {}, **data_arguments(builder, num_classes, in_channels))
    try:
        built = builder(**kwargs)
    except (TypeError, ValueError, RuntimeError) as error:
        shown = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise CnnzooError(f"{name}({shown}) failed: {first}") from error
    if not isinstance(built, torch.nn.Module):
        raise CnnzooError(f"model={name} returned a {type(built).__name__}, not an nn.Module")
    return built


def builder_name(builder) -> str:
    """A builder's name for messages and run folders: its own, or "builder" for a lambda."""
    name = getattr(builder, "__name__", type(builder).__name__)
    return name if name.isidentifier() else "builder"


def load_run(folder, model=None, *, best: bool = False) -> Run:
    """Read a run directory back: its configuration, metrics and model with trained weights
    (``model, config, history = load_run(folder)``).

    The final ``model.safetensors`` is used when present, else the last checkpoint's weights;
    with ``best=True``, ``best.safetensors``: the weights of the epoch of best validation
    accuracy (a run that held out a validation split keeps them).
    A run of a model of the user's own needs ``model``: the module (its weights are replaced
    by the run's) or the function that builds it.
    """
    from .checkpoint import load_state

    if not isinstance(folder, (str, os.PathLike)):
        raise CnnzooError(f"folder={folder!r}: give the path of a run directory")
    folder = Path(folder)
    if not folder.is_dir():
        problem = "a file, not a folder" if folder.exists() else "no such folder"
        raise CnnzooError(f"{folder} is not a run directory ({problem})")
    if not (folder / CONFIG).exists():
        raise CnnzooError(f"{folder} is not a run directory (no {CONFIG})")
    if not isinstance(best, bool):
        raise CnnzooError(f"best={best!r}: best must be True or False")
    config = read_config(folder)
    if best and not (folder / BEST).exists():
        why = ("it held out no validation split (its val is 0)" if not config.get("val")
               else "no epoch has finished")
        raise CnnzooError(f"{folder} holds no best-epoch weights ({BEST}): {why}")
    net = build_model(config, model)
    if best:
        load_weights(folder / BEST, net)
    elif (folder / WEIGHTS).exists():
        load_weights(folder / WEIGHTS, net)
    elif (folder / CHECKPOINT).exists():
        state = load_checkpoint(folder / CHECKPOINT)
        load_state(net, state["model"], folder / CHECKPOINT)
    else:
        raise CnnzooError(f"{folder} holds no weights yet (no {WEIGHTS} or {CHECKPOINT})")
    return Run(folder, config, net.eval(), read_metrics(folder), "best" if best else "final")


def load_source(source, weights: str | None = None) -> Run:
    """What the pictures and evaluations read: the run directory ``source`` (``load_run``), or
    with ``weights`` (``"fashion-mnist"``) the registry model ``source`` with the weights
    cnnzoo ships for it, as a ``Run`` whose configuration is the record's (no history; its
    ``path`` the weights' folder in the package, ``weights`` the tag)."""
    if weights is None:
        return load_run(source)
    from ..models.weights import get_weights

    if not isinstance(source, str):
        raise CnnzooError(f"{source!r}: shipped weights are named by a registry model's name")
    shipped = get_weights(source, weights)
    config = dict(shipped.config, data_dir=None)  # the data is looked for where cnnzoo looks
    return Run(shipped.path.parent, config, shipped.build(), [], weights)


# --- a run's directory while it trains ---------------------------------------------------------

PROGRESS_FILES = (METRICS, CHECKPOINT, WEIGHTS)


def progress_files(run_dir: Path) -> tuple:
    """The identity (inode, modification time) of each file that records a run's progress, None
    for one that is absent: a new one written in place of the old changes it."""
    identities = []
    for name in PROGRESS_FILES:
        try:
            stat = (run_dir / name).stat()
        except OSError:
            identities.append(None)
        else:
            identities.append((stat.st_ino, stat.st_mtime_ns))
    return tuple(identities)


def check_out(out, model: str) -> Path:
    """The run directory to use: ``out``, or a new dated one. ``out`` may be a new or empty
    folder, or one whose run ended before its first epoch (a config.json and nothing of worth);
    not a run with finished epochs, nor a folder of other files."""
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path("runs") / f"{model}-{stamp}"
    if not isinstance(out, (str, os.PathLike)):
        raise CnnzooError(f"out={out!r}: out must be a folder's path")
    if str(out).strip() == "":
        raise CnnzooError(f"out={str(out)!r} is empty; name a folder for the run")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CnnzooError(f"out={str(out)!r} exists and is not a directory")
    if holds_run(out):
        raise CnnzooError(f"{out} already holds a run; continue it with resume={str(out)!r} "
                          f"or choose another out=")
    others = sorted(p.name for p in out.iterdir() if not is_run_file(p.name)) \
        if out.is_dir() else []
    if others:
        raise CnnzooError(f"out={str(out)!r} is a folder of other files ({', '.join(others[:3])}"
                          f"{', ...' if len(others) > 3 else ''}); give a new or empty folder")
    return out


def claim_new_dir(folder: Path) -> Path:
    """Create ``folder``, or ``folder-2``, ``folder-3``, ... when runs begun in the same second
    took the name: ``mkdir`` is atomic, so two runs never share a folder."""
    for number in range(1, 1000):
        candidate = folder if number == 1 else folder.with_name(f"{folder.name}-{number}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as error:
            raise CnnzooError(f"cannot create {candidate}: {error.strerror}") from error
        return candidate
    raise CnnzooError(f"cannot create a new run folder beside {folder}: 999 are taken")


def make_dir(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CnnzooError(f"cannot create {folder}: {error.strerror}") from error
    return folder


def config_to_resume(run_dir: Path) -> dict:
    """The configuration of the run in ``run_dir``, to be resumed."""
    if not (run_dir / CONFIG).exists():
        raise CnnzooError(f"cannot resume {run_dir}: no {CONFIG} there")
    return read_config(run_dir)


def load_for_resume(run_dir: Path, config: dict, epochs: int | None) -> dict | None:
    """The last checkpoint of the run in ``run_dir`` that ``config`` describes (``epochs``
    replacing its recipe's there, if given); None for a run killed before its first epoch
    ended, which starts again from scratch in the same directory."""
    if epochs is not None:
        config["recipe"]["epochs"] = epochs
    if not (run_dir / CHECKPOINT).exists():
        # metrics.csv is written just before each checkpoint: one row without a checkpoint is a
        # run killed while writing its first; more, or the final weights, mean it was removed
        finished = len(read_metrics(run_dir))
        if finished > 1 or (run_dir / WEIGHTS).exists():
            done = f"{METRICS} records {finished} finished epochs" if finished else \
                f"it holds the trained weights ({WEIGHTS})"
            raise CnnzooError(f"cannot resume {run_dir}: its {CHECKPOINT} is missing but {done}; "
                              f"restore the checkpoint, or train anew with another out=")
        return None
    state = load_checkpoint(run_dir / CHECKPOINT)
    target = config.get("target_acc")
    rows = read_metrics(run_dir)[: state["epoch"]]
    if target is not None and (run_dir / WEIGHTS).exists() and any(
            (eval_acc(row) or 0.0) >= target for row in rows):
        raise CnnzooError(f"{run_dir} reached its target_acc={target:g} and finished; train "
                          f"anew with another out= to go further")
    if state["epoch"] >= config["recipe"]["epochs"] and (run_dir / WEIGHTS).exists():
        raise CnnzooError(f"{run_dir} already finished {state['epoch']} "
                          f"epoch{'s' * (state['epoch'] != 1)}; pass epochs=N with "
                          f"N > {state['epoch']} to train further")
    return state


def save_epoch(run_dir: Path, net, optimizer, scheduler, epoch: int, device, history) -> None:
    """The run's state after ``epoch``: ``metrics.csv``, then ``checkpoint.pt`` (so that a
    checkpoint never claims an epoch whose row is missing)."""
    state = dict(model=net.state_dict(), optimizer=optimizer.state_dict(),
                 scheduler=scheduler.state_dict(), epoch=epoch, rng_cpu=torch.get_rng_state())
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    write_metrics(run_dir, history)
    save_checkpoint(run_dir / CHECKPOINT, state)
