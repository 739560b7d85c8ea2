"""The model registry: a decorator that files each builder under its name with its metadata.

``register_model`` refuses a name twice; ``get_model`` builds by name; ``list_models`` sorts names
naturally (vgg11 before vgg13 before vgg16); ``model_info`` returns an entry's metadata.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import CnnzooError, UnknownModelError, out_of_memory_as
from ..safeload import load_safetensors, load_torch_file
from ._common import whole_number

SOURCES = ("paper", "d2l", "seed", "torchvision", "cnnzoo")
COUNTS = ("num_classes", "in_channels")  # every builder takes them; at least 1


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
    info = _REGISTRY.get(name) if isinstance(name, str) else None
    if info is None:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `cnnzoo models`"
        raise UnknownModelError(f"unknown model {name!r}{hint}")
    return info


def get_model(name: str, weights=None, **kwargs) -> nn.Module:
    """Build a registered model. Every builder takes ``num_classes`` and ``in_channels``; models
    with a fixed-size head also take ``input_size=(C, H, W)`` or ``(H, W)``.

    ``weights`` is a state_dict file to load into the built model with ``strict=True``: a
    ``.safetensors`` file, or a ``torch.save``'d dict read with ``weights_only=True`` (a file
    that would run code is refused). A torchvision state_dict fits the torchvision-compatible
    variants unchanged. A bad file, or one that does not fit, raises ``CnnzooError``; so does a
    model whose weights alone do not fit in memory (a fixed-size head built for a huge input).
    """
    builder = model_info(name).builder
    _check_arguments(name, builder, kwargs)
    with out_of_memory_as(f"{name}{_built_for(kwargs)} does not fit in memory (its layers' "
                          f"weights alone); try a smaller "
                          f"{'input size' if 'input_size' in kwargs else 'model'}"):
        try:
            model = builder(**kwargs)
        except CnnzooError:
            raise
        except ValueError as error:  # a layer's own range check: dropout=1.5
            raise CnnzooError(f"{name}{_built_for(kwargs)}: {error}") from None
    if weights is not None:
        _load_state_file(model, weights, name)
    return model


def _check_arguments(name: str, builder, kwargs: dict) -> None:
    """A one-line ``CnnzooError`` for a keyword the builder does not take, or a value of the
    wrong kind: ``num_classes`` and ``in_channels`` whole numbers of at least 1, the others of
    their default's type (True or False for a flag, a finite number for a rate). None is taken
    where it is the default; ``input_size`` is checked where it is read."""
    parameters = inspect.signature(builder).parameters
    for key, value in kwargs.items():
        if key not in parameters:
            raise CnnzooError(f"{name} takes no argument {key!r}; it takes: "
                              f"{', '.join(parameters)}")
        default = parameters[key].default
        if value is None and default is None:
            continue
        if key in COUNTS:
            fits, kind = whole_number(value) and value >= 1, "a whole number of at least 1"
        elif isinstance(default, bool):
            fits, kind = isinstance(value, bool), "True or False"
        elif isinstance(default, int):
            fits, kind = whole_number(value), "a whole number"
        elif isinstance(default, float):
            fits = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                    and math.isfinite(value))
            kind = "a number"
        else:
            continue
        if not fits:
            raise CnnzooError(f"{name}: {key} must be {kind}, not {value!r}")


def _built_for(kwargs: dict) -> str:
    """What a builder was asked for, in words: " for 1x28x28 inputs", " with width=4096"."""
    if "input_size" in kwargs:
        size = kwargs["input_size"]  # (C, H, W), (H, W) or one side
        sides = size if isinstance(size, (tuple, list)) else (size, size)
        return f" for {'x'.join(map(str, sides))} inputs"
    return f" with {', '.join(f'{k}={v!r}' for k, v in kwargs.items())}" if kwargs else ""


def _load_state_file(model: nn.Module, path, name: str = "the model") -> None:
    """Load a ``.safetensors`` or ``torch.save``'d state_dict into ``model`` (strict keys and
    shapes); every failure is one ``CnnzooError`` line."""
    path = Path(path)
    if not path.is_file():
        raise CnnzooError(f"weights file {path} does not exist")
    state = load_safetensors(path) if path.suffix == ".safetensors" else load_torch_file(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CnnzooError(f"{path} holds no state_dict (a dict of name -> tensor); save one with "
                          f"torch.save(model.state_dict(), path)")

    expected = model.state_dict()
    for key in expected:  # files saved before BatchNorm counted its batches, as torch loads them
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(expected[key])
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [f"{len(keys)} {what} (first: {keys[0]})"
                 for keys, what in ((missing, "missing keys"), (unexpected, "unexpected keys"))
                 if keys]
        raise CnnzooError(f"{path} does not fit {name}: {'; '.join(parts)}")
    for key, tensor in expected.items():
        if tensor.shape != state[key].shape:
            raise CnnzooError(f"{path} does not fit {name}: {key} has shape "
                              f"{tuple(state[key].shape)}, the model {tuple(tensor.shape)}")
    model.load_state_dict(state, strict=True)

