"""What a run says while it trains: a ``Reporter`` hears every event of ``train``.

``reporter_for(progress, curves)`` picks what a user sees by default:

- in a terminal, a header, a tqdm bar per epoch on standard error, one line per finished epoch
  and the result on standard output (``TextReporter``, what the ``cnnzoo train`` command shows);
- in a log file or a pipe the same lines, with a plain line at most every minute while an epoch
  runs instead of the bar, so that a long epoch still shows it is moving;
- in a Jupyter notebook, a notebook progress bar and the same lines (``NotebookReporter``), and
  the curves drawn inline, redrawn after each epoch (``LiveCurves``, the book's ``Animator``);
- nothing at all with ``progress=False`` (warnings still reach Python's ``warnings``).
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
import warnings

from ..errors import CnnzooError, CnnzooWarning
from .rundir import accuracy_text


class Reporter:
    """Receives a run's progress; this one says nothing, but for warnings, which go to Python's
    ``warnings`` as ``CnnzooWarning``. Subclass it to watch a run from code."""

    def start(self, info: dict) -> None:
        """Before the first epoch: the run's configuration with ``run_dir``, ``start_epoch``,
        ``parameters`` and ``history`` (the rows of the epochs before a resumed run's first)."""

    def epoch_start(self, epoch: int, epochs: int, num_batches: int) -> None: ...
    def step(self) -> None: ...

    def epoch_end(self, row: dict) -> None:
        """After each epoch: its row of ``metrics.csv``."""

    def note(self, text: str) -> None:
        """A word on work that precedes the first epoch (``fast=True`` measuring)."""

    def warn(self, text: str) -> None:
        """A run that is not learning (``chance_warning``)."""
        warnings.warn(text, CnnzooWarning, stacklevel=2)

    def end(self, result) -> None:
        """After the last epoch: the ``TrainResult``."""

    def close(self) -> None:
        """The run ended, finished or not: bars and displays are let go."""


class Reporters(Reporter):
    """Several reporters hearing the same run, each told every event in turn."""

    def __init__(self, *reporters: Reporter):
        self.reporters = reporters

    def _tell(self, event: str, *args) -> None:
        for reporter in self.reporters:
            getattr(reporter, event)(*args)

    def start(self, info):
        self._tell("start", info)

    def epoch_start(self, epoch, epochs, num_batches):
        self._tell("epoch_start", epoch, epochs, num_batches)

    def step(self):
        self._tell("step")

    def epoch_end(self, row):
        self._tell("epoch_end", row)

    def note(self, text):
        self._tell("note", text)

    def warn(self, text):
        self._tell("warn", text)

    def end(self, result):
        self._tell("end", result)

    def close(self):
        self._tell("close")


def in_notebook() -> bool:
    """Whether this is a Jupyter kernel (an IPython shell with a kernel behind it: Jupyter,
    JupyterLab, VS Code's notebooks, Colab). IPython is not imported to find out."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


def reporter_for(progress: bool | None = None, curves: bool | None = None,
                 reporter: Reporter | None = None) -> Reporter:
    """What ``train(progress=..., curves=..., reporter=...)`` reports to: ``reporter`` if given,
    else a ``NotebookReporter`` in a notebook or a ``TextReporter`` elsewhere (None and True
    alike), or the silent ``Reporter`` for ``progress=False``; with live curves beside it in a
    notebook, unless ``curves=False`` (or ``progress=False`` without ``curves=True``)."""
    for name, value in (("progress", progress), ("curves", curves)):
        if value is not None and not isinstance(value, bool):
            raise CnnzooError(f"{name}={value!r}: {name} must be True, False or None")
    if reporter is not None and not all(callable(getattr(reporter, name, None)) for name in
                                        ("start", "epoch_start", "step", "epoch_end", "note",
                                         "warn", "end", "close")):
        raise CnnzooError(f"reporter={type(reporter).__name__}: a reporter needs the methods of "
                          f"cnnzoo.training.Reporter (subclass it)")
    notebook = in_notebook()
    if curves and not notebook:
        raise CnnzooError("curves=True draws the curves in a Jupyter notebook; elsewhere "
                          "they are the run directory's curves.png")
    if reporter is None:
        reporter = (Reporter() if progress is False else
                    NotebookReporter() if notebook else TextReporter())
    if notebook and (curves or curves is None and progress is not False):
        return Reporters(reporter, LiveCurves())
    return reporter


class TextReporter(Reporter):
    """One line per epoch on standard output; on standard error while an epoch runs, a tqdm bar
    when that is a terminal, and otherwise (a log file, a pipe) a plain line at most every
    ``LOG_EVERY_SECONDS``. ``wording`` rewrites notes (the command line words parameters as its
    flags); warnings go to Python's ``warnings``, as ``Reporter``'s do. ``results=False`` leaves
    out the lines of the finished run (``result_lines``), for a caller that says its own."""

    LOG_EVERY_SECONDS = 60.0

    def __init__(self, wording=None, results: bool = True):
        self.wording = wording or (lambda text: text)
        self.results = results
        self.bar = None
        self.run_dir = None
        self.epochs = 0

    # the streams are looked up when used: a notebook or a test may have replaced them
    @property
    def stream(self):
        return sys.stdout

    @property
    def bar_stream(self):
        return sys.stderr

    def start(self, info):
        self.run_dir = info["run_dir"]
        resumed = f", resuming at epoch {info['start_epoch']}" if info["start_epoch"] > 1 else ""
        recipe = info["recipe"]
        self.epochs = recipe["epochs"]
        print(f"training {info['model']} ({info['parameters']:,} parameters) on "
              f"{info['data']} with the {recipe['name']} recipe, "
              f"{recipe['epochs']} epoch{'s' * (recipe['epochs'] != 1)}, lr {recipe['lr']:g}, "
              f"batch {recipe['batch_size']}, input {'x'.join(map(str, info['input_size']))}, "
              f"device {info['device_used']}{resumed}", file=self.stream)
        print(f"run directory: {self.run_dir}", file=self.stream)
        if info.get("data_source"):
            print(f"data: {data_line(info['data_source'])}", file=self.stream)
        if info.get("fast_path"):
            from .fastpath import describe

            print(f"fast path: {self.wording(describe(info['fast_path']))}", file=self.stream)
        self.stream.flush()

    def note(self, text):
        print(f"cnnzoo: {self.wording(text)}", file=self.bar_stream, flush=True)

    def new_bar(self, epoch: int, epochs: int, num_batches: int):
        """The bar of one epoch, or None for the plain lines of a log."""
        if not self.bar_stream.isatty():
            return None
        from tqdm import tqdm

        return tqdm(total=num_batches, desc=f"epoch {epoch}/{epochs}", unit="batch",
                    file=self.bar_stream, leave=False, dynamic_ncols=True)

    def epoch_start(self, epoch, epochs, num_batches):
        self.bar = self.new_bar(epoch, epochs, num_batches)
        self.epoch, self.epochs, self.num_batches, self.done = epoch, epochs, num_batches, 0
        self.epoch_started = self.logged_at = time.monotonic()

    def step(self):
        if self.bar is not None:
            self.bar.update()
            return
        self.done += 1
        now = time.monotonic()
        if now - self.logged_at >= self.LOG_EVERY_SECONDS and self.done < self.num_batches:
            self.logged_at = now
            left = (now - self.epoch_started) / self.done * (self.num_batches - self.done)
            print(f"epoch {self.epoch}/{self.epochs}: {self.done} of {self.num_batches} "
                  f"batches, about {duration(left)} left in this epoch",
                  file=self.bar_stream, flush=True)

    def epoch_end(self, row):
        self.close()
        print(epoch_line(row, self.epochs), file=self.stream, flush=True)

    def end(self, result):
        if self.results:
            print("\n".join(map(self.wording, result_lines(result))), file=self.stream,
                  flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class NotebookReporter(TextReporter):
    """``TextReporter``'s lines, with a notebook progress bar for each epoch (ipywidgets; the
    text bar where they are not installed)."""

    def new_bar(self, epoch, epochs, num_batches):
        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.notebook import tqdm
        else:
            from tqdm import tqdm
        return tqdm(total=num_batches, desc=f"epoch {epoch}/{epochs}", unit="batch",
                    leave=False)


class LiveCurves(Reporter):
    """The run's curves drawn inline in a notebook, redrawn in place after each epoch."""

    def __init__(self):
        self.handle = None
        self.history: list[dict] = []
        self.title = ""

    def warn(self, text):
        """Nothing: the reporter beside it says the warning."""

    def start(self, info):
        self.history = list(info.get("history", []))
        self.title = f"{info['model']} on {info['data']}"

    def epoch_end(self, row):
        from IPython.display import display

        from ..plots import curves_figure

        self.history.append(row)
        figure = curves_figure(self.history, title=self.title)
        if self.handle is None:
            self.handle = display(figure, display_id=True)
        else:
            self.handle.update(figure)


def data_line(source: dict) -> str:
    """Where a run's data came from, ``source`` being its record's ``data_source``: one place
    ("/usr/share/datasets/fashion-mnist"), or each split's (train, val where the run holds one
    out, test) where they differ."""
    if set(source) <= {"train", "test"} and source.get("train") == source.get("test"):
        return str(source.get("train"))
    return "; ".join(f"{split} {source[split]}" for split in ("train", "val", "test")
                     if split in source)


def epoch_table(history: list[dict]) -> tuple[list[str], list[list]]:
    """The header and rows of a table of a run's epochs (a notebook's, the report's): "—"
    where an epoch has no validation or test accuracy."""
    def cell(value):
        return "—" if value is None else f"{value:.4f}"

    header = ["epoch", "train loss", "train acc", "val acc", "test acc", "seconds",
              "examples/s"]
    rows = [[row["epoch"], f"{row['train_loss']:.4f}", f"{row['train_acc']:.4f}",
             cell(row.get("val_acc")), cell(row.get("test_acc")), f"{row['seconds']:.1f}",
             rate_text(row["examples_per_sec"])] for row in history]
    return header, rows


def rate_text(examples_per_sec: float) -> str:
    """A throughput as shown: "12,345", or "—" where no step was timed (NaN)."""
    return f"{examples_per_sec:,.0f}" if math.isfinite(examples_per_sec) else "—"


def epoch_line(row: dict, epochs: int) -> str:
    """``epoch   3/10  loss 0.512  train acc 0.811  test acc 0.790  2.9 s  25,311 examples/sec``
    (``val acc`` in a run that holds a validation split out, ``test acc`` then in its last
    epoch's line only)."""
    return (f"epoch {row['epoch']:>3}/{epochs}  loss {row['train_loss']:.3f}  "
            f"train acc {row['train_acc']:.3f}  {accuracy_text(row, '  ', 3)}  "
            f"{row['seconds']:.1f} s  {rate_text(row['examples_per_sec'])} examples/sec")


def target_line(target: float, reached: dict | None) -> str:
    """Whether a run reached its ``target_acc``, and when: MLPerf's time to train."""
    if reached is None:
        return f"target_acc={target:g} not reached"
    return (f"reached target_acc={target:g} in epoch {reached['epoch']} (acc "
            f"{reached['accuracy']:.4f}), {reached['seconds']:.1f} s from the first step, "
            f"evaluations included (MLPerf's time to train)")


def result_lines(result) -> list[str]:
    """A finished run in four lines: the final metrics, the throughput, where the time went
    and the run directory."""
    final = result.final
    lines = [f"loss {final['train_loss']:.3f}, train acc {final['train_acc']:.3f}, "
             f"{accuracy_text(final, digits=3)}"]
    if result.config.get("target_acc") is not None:
        lines.append(target_line(result.config["target_acc"], result.target))
    if math.isfinite(result.examples_per_sec):
        lines.append(f"{result.examples_per_sec:,.0f} examples/sec on {result.device} "
                     f"(training steps)")
    else:
        lines.append(f"no step timed on {result.device}: every step was warm-up (more steps "
                     f"measure the throughput)")
    lines.append(time_line(result))
    lines.append(f"run directory: {result.run_dir}")
    return lines


def time_line(result) -> str:
    """Where the wall time went: "9.2 s wall time in all: 3.3 s training steps, 0.6 s recording
    the CUDA graph, ...", each part of at least 0.05 s."""
    warm_up = ("compilation" if result.config.get("compile") else "recording the CUDA graph")
    parts = [(result.train_seconds, "training steps"), (result.warmup_seconds, warm_up),
             (result.setup_seconds, "set-up (data, model, device)"),
             (result.eval_seconds, "evaluation"),
             (result.save_seconds, "checkpoints, plots, weights")]
    rest = result.wall_seconds - sum(seconds for seconds, _ in parts)
    listed = ", ".join(f"{seconds:.1f} s {what}" for seconds, what in parts + [(rest, "other")]
                       if seconds >= 0.05)
    return f"{result.wall_seconds:.1f} s wall time in all: {listed}"


def duration(seconds: float) -> str:
    """12 s, 4 min 5 s, 1 h 20 min."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
