"""The zoo at a glance: one row per registered model, with its parameter count."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class CatalogRow:
    """A registered model's metadata and its parameter count at the default settings."""

    name: str
    family: str
    year: int | None
    input_size: tuple[int, int, int] | None  # None: a user's model that records none
    num_classes: int | None
    params: int
    source: str


def parameter_count(name: str) -> int:
    """Parameters of the registered model ``name`` at its defaults, counted on a model built
    with ``torch.nn.init``'s initialisers skipped: its tensors are allocated but never written
    (the operating system maps such pages only when touched), so even VGG-19 builds at once.
    (The meta device would do as well but for its first use, which imports torch's compiler,
    far slower than the count itself.)"""
    from ..models import get_model

    with initialisers_skipped():
        model = get_model(name)
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def initialisers_skipped():
    """Within the block, ``torch.nn.init``'s in-place initialisers (``kaiming_uniform_``, ...)
    leave their tensor as it is: a model built there has its shapes, not its values. Not for a
    model to be used, and not while another thread builds one."""
    names = [name for name, value in vars(nn.init).items()
             if name.endswith("_") and not name.startswith("_") and callable(value)]
    saved = {name: getattr(nn.init, name) for name in names}
    try:
        for name in names:
            setattr(nn.init, name, _left_as_it_is)
        yield
    finally:
        for name, value in saved.items():
            setattr(nn.init, name, value)


def _left_as_it_is(tensor, *args, **kwargs):
    return tensor


def catalog(pattern: str | None = None) -> list[CatalogRow]:
    """Rows for the models matching ``pattern`` (as ``list_models``), naturally sorted."""
    from ..models import list_models, model_info

    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        rows.append(CatalogRow(name, info.family, info.year,
                               tuple(info.input_size) if info.input_size else None,
                               info.num_classes, parameter_count(name), info.source))
    return rows
