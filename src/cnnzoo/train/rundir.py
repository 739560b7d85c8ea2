"""The run directory: what a training run leaves behind, and how it is read back.

    config.json        the resolved configuration (model, data, recipe, seed, device, ...)
    metrics.csv        one row per finished epoch
    curves.png         loss and accuracies against epochs
    checkpoint.pt      model, optimizer, scheduler, epoch and RNG states (weights_only loadable)
    model.safetensors  the final weights

A lock file keeps two processes from writing one directory at once.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CnnzooError
from .checkpoint import atomic_write_text, load_weights, read_json

CONFIG, METRICS, CURVES = "config.json", "metrics.csv", "curves.png"
CHECKPOINT, WEIGHTS, LOCK = "checkpoint.pt", "model.safetensors", ".lock"
METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "test_acc", "seconds", "examples_per_sec")


class RunLock:
    """An exclusive lock on a run directory (a file holding the owner's pid).

    A lock left by a process that no longer runs is taken over; one held by a live process makes
    the second run refuse instead of mixing its files with the first's.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK

    def __enter__(self):
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if _pid_alive(self._owner()):
                    raise CnnzooError(
                        f"{self.path.parent} is in use by another cnnzoo process (pid "
                        f"{self._owner()}); choose another --out") from None
                self.path.unlink(missing_ok=True)  # stale lock of a killed run
                continue
            except OSError as error:
                raise CnnzooError(f"cannot write in {self.path.parent}: {error.strerror}") from None
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            return self
        raise CnnzooError(f"cannot lock {self.path.parent}")

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc):
        if self._owner() == os.getpid():
            self.path.unlink(missing_ok=True)


def _pid_alive(pid: int | None) -> bool:
    if not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_metrics(folder: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row[k] for k in METRIC_FIELDS})
    atomic_write_text(Path(folder) / METRICS, buffer.getvalue())


def read_metrics(folder: Path) -> list[dict]:
    path = Path(folder) / METRICS
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
                for row in csv.DictReader(handle)]


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


def build_model(config: dict) -> torch.nn.Module:
    """The model a run configuration describes, freshly initialised."""
    from ..models import get_model, model_info
    import inspect

    builder = model_info(config["model"]).builder
    kwargs = dict(num_classes=len(config["classes"]), in_channels=config["input_size"][0])
    if "input_size" in inspect.signature(builder).parameters:
        kwargs["input_size"] = tuple(config["input_size"])
    return get_model(config["model"], **kwargs)


def load_run(folder) -> Run:
    """Read a run directory back: its configuration, metrics and model with trained weights.

    The final ``model.safetensors`` is used when present, else the last checkpoint's weights.
    """
    from .checkpoint import load_checkpoint

    folder = Path(folder)
    if not folder.is_dir():
        raise CnnzooError(f"{folder} is not a run directory (no such folder)")
    if not (folder / CONFIG).exists():
        raise CnnzooError(f"{folder} is not a run directory (no {CONFIG})")
    config = read_json(folder / CONFIG)
    model = build_model(config)
    if (folder / WEIGHTS).exists():
        load_weights(folder / WEIGHTS, model)
    elif (folder / CHECKPOINT).exists():
        state = load_checkpoint(folder / CHECKPOINT)
        model.load_state_dict(state["model"])
    else:
        raise CnnzooError(f"{folder} holds no weights yet (no {WEIGHTS} or {CHECKPOINT})")
    return Run(folder, config, model.eval(), read_metrics(folder))
