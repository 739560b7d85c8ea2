"""The model registry: a decorator that files each builder under its name with its metadata.

``register_model`` refuses a name twice; ``get_model`` builds by name; ``list_models`` sorts names
naturally (vgg11 before vgg13 before vgg16); ``model_info`` returns an entry's metadata.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from ..errors import UnknownModelError

SOURCES = ("paper", "d2l", "seed", "torchvision")


@dataclass(frozen=True)
class ModelInfo:
    """What a registry entry is: where it comes from and what it expects.

    ``input_size`` is the default (C, H, W); ``source`` says which variant this is: the paper's,
    the textbook's (d2l), a seed document's own, or torchvision's layout.
    """

    name: str
    family: str
    paper: str
    year: int
    input_size: tuple[int, int, int]
    num_classes: int
    source: str
    description: str = ""
    builder: Callable[..., nn.Module] = field(repr=False, compare=False, default=None)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(*, family: str, paper: str, year: int, input_size: tuple[int, int, int],
                   num_classes: int, source: str, name: str | None = None):
    """Decorator filing a builder (``fn(**kwargs) -> nn.Module``) in the registry.

    The entry's name is the function's name unless ``name`` is given; its description is the
    first line of the docstring. Registering a name twice raises ``ValueError``.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")

    def decorate(fn):
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = ModelInfo(key, family, paper, year, tuple(input_size), num_classes,
                                   source, doc[0] if doc else "", fn)
        return fn

    return decorate


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (``"resnet*"``), naturally sorted.

    A pattern without wildcards matches names that contain it.
    """
    names = _REGISTRY.keys()
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatchcase(n, glob)]
    return sorted(names, key=_natural_key)


def model_info(name: str) -> ModelInfo:
    """The metadata of a registered model; unknown names raise ``UnknownModelError``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `cnnzoo models`"
        raise UnknownModelError(f"unknown model {name!r}{hint}") from None


def get_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model. Every builder takes ``num_classes`` and ``in_channels``; models
    with a fixed-size head also take ``input_size=(C, H, W)`` or ``(H, W)``."""
    return model_info(name).builder(**kwargs)
