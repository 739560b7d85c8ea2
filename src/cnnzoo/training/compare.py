"""Runs side by side: ``compare_runs(folders)`` reads each run directory's configuration and
metrics (no weights are loaded, so a run still training or stopped early is compared as far as
it got) into a ``Comparison``: a row per run with its model, recipe, the settings in which the
runs differ, its best and final test accuracy and the seconds it trained, and one figure of
their curves overlaid.
"""

from __future__ import annotations

import glob
import math
from dataclasses import dataclass
from pathlib import Path

from .._html import html_table
from .._tables import text_table
from ..errors import CnnzooError
from .rundir import CONFIG, WEIGHTS, eval_acc, read_config, read_metrics

# the settings a row shows when the runs differ in them (besides model and recipe name):
# the recipe's fields, then the run's own
RUN_SETTINGS = ("data", "seed", "train_subset", "test_subset", "val", "target_acc",
                "deterministic", "model_args", "amp", "channels_last", "compile",
                "cuda_graphs", "world_size")


@dataclass(frozen=True)
class RunSummary:
    """One run as ``compare_runs`` reads it."""

    path: Path
    model: str
    recipe: str
    settings: dict          # recipe fields and RUN_SETTINGS, flat: {"lr": 0.9, "seed": 0}
    history: list           # the rows of metrics.csv
    planned_epochs: int
    finished: bool          # its final weights are written

    @property
    def best(self) -> dict | None:
        """The epoch of the highest accuracy each epoch was judged by (validation, or test
        in a run without a validation split; the first of equals), None before one."""
        judged = [row for row in self.history if eval_acc(row) is not None]
        return max(judged, key=eval_acc, default=None)

    @property
    def seconds(self) -> float:
        return sum(row["seconds"] for row in self.history)


@dataclass(frozen=True)
class Comparison:
    """Runs side by side; ``table()`` as text, an HTML table in a notebook, ``figure()``."""

    runs: list[RunSummary]
    differing: list[str]    # the settings not the same in every run

    def rows(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """The header and the rows of the table, as text."""
        header = ("run", "model", "recipe", *self.differing, "done", "best acc",
                  "final test acc", "seconds")
        rows = []
        for run in self.runs:
            best, last = run.best, (run.history[-1] if run.history else None)
            done = f"{len(run.history)}/{run.planned_epochs}" + ("" if run.finished else " *")
            rows.append((run.path.name, run.model, run.recipe,
                         *(_shown(run.settings.get(key)) for key in self.differing), done,
                         f"{eval_acc(best):.4f} {_split(best)}(epoch {best['epoch']})"
                         if best else "—",
                         f"{last['test_acc']:.4f}" if last and last.get("test_acc") is not None
                         else "—", f"{run.seconds:.1f}"))
        return header, rows

    def table(self) -> str:
        header, rows = self.rows()
        numeric = set(range(3 + len(self.differing), len(header)))
        note = ("\n* not finished: its final weights are not written (stopped, or training)"
                if any(not run.finished for run in self.runs) else "")
        return text_table(header, rows, numeric) + note

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        header, rows = self.rows()
        return html_table(header, rows, numeric=range(3 + len(self.differing), len(header)),
                          inline=True)

    def figure(self):
        """Test accuracy (left) and training loss (right) against epochs, a line per run."""
        from ..plots import curves_overlay

        return curves_overlay({run.path.name: run.history for run in self.runs})


def run_folders(paths) -> list[Path]:
    """The run directories named by ``paths``: folders, or shell patterns (``runs/*``), whose
    matches that hold no run (no ``config.json``) are passed over. A folder named outright
    that holds no run, or a pattern that matches none, is a one-line ``CnnzooError``."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    folders = []
    for given in paths:
        text = str(Path(given).expanduser())
        if glob.has_magic(text):
            matches = [Path(match) for match in sorted(glob.glob(text))
                       if (Path(match) / CONFIG).is_file()]
            if not matches:
                raise CnnzooError(f"{given!s} matches no run directory (a folder holding "
                                  f"{CONFIG})")
            folders += matches
        elif not (Path(text) / CONFIG).is_file():
            what = "does not exist" if not Path(text).exists() else f"holds no {CONFIG}"
            raise CnnzooError(f"{given!s} {what}: it is not a run directory")
        else:
            folders.append(Path(text))
    if not folders:
        raise CnnzooError("give the run directories to compare")
    return list(dict.fromkeys(folders))


def compare_runs(paths) -> Comparison:
    """A ``Comparison`` of the runs in ``paths`` (folders or patterns, ``run_folders``), each
    read from its ``config.json`` and ``metrics.csv``; a damaged file is one line naming it."""
    runs = []
    for folder in run_folders(paths):
        config = read_config(folder)
        settings = {**config["recipe"], **{key: config.get(key) for key in RUN_SETTINGS}}
        settings.pop("name")
        runs.append(RunSummary(folder, config["model"], config["recipe"]["name"], settings,
                               read_metrics(folder), config["recipe"]["epochs"],
                               (folder / WEIGHTS).exists()))
    keys = list(dict.fromkeys(key for run in runs for key in run.settings))
    differing = [key for key in keys
                 if len({_shown(run.settings.get(key)) for run in runs}) > 1]
    return Comparison(runs, differing)


def _split(row: dict) -> str:
    """"val " where the accuracy is a validation accuracy; nothing for a test one."""
    return "val " if row.get("val_acc") is not None else ""


def _shown(value) -> str:
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "—"
    return "—" if value is None else str(value)
