"""TensorBoard event files of a run (``tensorboard=True``), in its directory's ``events/``.

``EventLog`` is told what the loop already holds, so that logging reads nothing more from the
device: each step's loss and learning rate (the losses kept on the device through the epoch and
read once at its end, with the epoch's other sums), each epoch's row of ``metrics.csv``, and at
the end the curves, the confusion matrix of the test set, the hyperparameters with the final
metrics (TensorBoard's HParams dashboard) and the model's graph where ``torch.jit.trace`` can
trace it. Global steps count optimiser steps for the per-step scalars and epochs for the rest.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ..errors import CnnzooError

TENSORBOARD_MISSING = ("tensorboard=True writes TensorBoard's event files, which needs the "
                       "tensorboard package: pip install 'cnnzoo[tensorboard]'")


def check_available() -> None:
    """A one-line ``CnnzooError`` where the ``tensorboard`` package is not installed."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise CnnzooError(TENSORBOARD_MISSING)


class EventLog:
    """The event writer of one run directory; ``first_step`` is the global step a resumed
    run starts from (events a killed run wrote beyond it are purged, as TensorBoard's
    ``purge_step`` does)."""

    def __init__(self, folder: Path, first_step: int = 0):
        check_available()
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.writer = SummaryWriter(log_dir=str(self.folder),
                                    purge_step=first_step if first_step else None)

    def steps(self, first_step: int, losses: list[float], lrs: list[float]) -> None:
        """One epoch's per-step training loss and learning rate, from global step
        ``first_step`` on."""
        for offset, (loss, lr) in enumerate(zip(losses, lrs)):
            self.writer.add_scalar("step/train_loss", loss, first_step + offset)
            self.writer.add_scalar("step/lr", lr, first_step + offset)

    def epoch(self, row: dict) -> None:
        """An epoch's row of ``metrics.csv``, each number under ``epoch/NAME``."""
        for name, value in row.items():
            if name != "epoch" and value is not None and value == value:  # NaN: not timed
                self.writer.add_scalar(f"epoch/{name}", value, row["epoch"])

    def end(self, history: list[dict], config: dict, confusion, net, example) -> None:
        """The finished run: its curves, the test set's confusion matrix (None: not
        evaluated), the hyperparameters with the final metrics, and the model's graph."""
        from ..plots import confusion_figure, curves_figure

        last = history[-1]["epoch"]
        self.writer.add_figure("curves", curves_figure(history, config["model"]), last)
        if confusion is not None:
            self.writer.add_figure("test/confusion",
                                   confusion_figure(confusion.cpu().numpy(),
                                                    config["classes"]), last)
        self.writer.add_hparams(hyperparameters(config), final_metrics(history),
                                run_name="hparams", global_step=last)
        self._graph(net, example)
        self.writer.flush()

    def _graph(self, net, example) -> None:
        # add_graph traces the model with torch.jit.trace; a model it cannot trace (control
        # flow on values, outputs of other types) simply has no graph, which TensorBoard shows
        # as an empty tab: the rest of the run's events are unaffected
        import torch

        was_training = net.training
        net.eval()
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the tracer's warnings on a model it cannot
                self.writer.add_graph(net, example)  # trace fully
        except Exception:  # noqa: BLE001 - any failure of the tracer means: no graph
            pass
        finally:
            net.train(was_training)

    def close(self) -> None:
        self.writer.close()


def hyperparameters(config: dict) -> dict:
    """The run's choices as TensorBoard's HParams takes them (numbers, strings and booleans;
    an unset value as the word "none")."""
    chosen = {"model": config["model"], "data": config["data"], "seed": config["seed"],
              "val": config.get("val", 0)}
    chosen.update(config["recipe"])
    chosen["recipe"] = chosen.pop("name")
    return {key: "none" if value is None else value for key, value in chosen.items()}


def final_metrics(history: list[dict]) -> dict:
    """The last epoch's accuracies and loss, with the best validation accuracy, for HParams;
    the names are ``hparams/...`` so that they do not mix with the epochs' scalars."""
    last = history[-1]
    metrics = {f"hparams/{key}": last[key] for key in ("train_loss", "train_acc", "val_acc",
                                                       "test_acc")
               if last.get(key) is not None}
    vals = [row["val_acc"] for row in history if row.get("val_acc") is not None]
    if vals:
        metrics["hparams/best_val_acc"] = max(vals)
    return metrics
