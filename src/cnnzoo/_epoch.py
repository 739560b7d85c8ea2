"""One epoch's row of a run's metrics (``metrics.csv``), read alike by the training code and
by the plots, which sit below it."""

from __future__ import annotations


def eval_acc(row: dict) -> float | None:
    """The accuracy an epoch was judged by: its validation accuracy where the run holds a
    validation split out, else its test accuracy."""
    return row["val_acc"] if row.get("val_acc") is not None else row.get("test_acc")
