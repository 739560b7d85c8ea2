"""The zoo at a glance: one row per registered model, with its parameter count."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CatalogRow:
    """A registered model's metadata and its parameter count at the default settings."""

    name: str
    family: str
    year: int
    input_size: tuple[int, int, int]
    num_classes: int
    params: int
    source: str


def parameter_count(name: str) -> int:
    """Parameters of the registered model ``name`` at its defaults, counted on the meta device
    (shapes only: no memory allocated, no initialisation run), or on the CPU where the builder
    cannot run on meta."""
    from ..models import get_model

    try:
        with torch.device("meta"):
            model = get_model(name)
    except Exception:  # a builder that computes with real tensors: build it for real
        model = get_model(name)
    return sum(p.numel() for p in model.parameters())


def catalog(pattern: str | None = None) -> list[CatalogRow]:
    """Rows for the models matching ``pattern`` (as ``list_models``), naturally sorted."""
    from ..models import list_models, model_info

    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        rows.append(CatalogRow(name, info.family, info.year, tuple(info.input_size),
                               info.num_classes, parameter_count(name), info.source))
    return rows
