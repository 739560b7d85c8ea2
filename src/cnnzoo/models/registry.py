"""The model registry: a decorator that files each builder under its name with its metadata.

``register_model`` refuses a name twice; ``get_model`` builds by name; ``list_models`` sorts names
naturally (vgg11 before vgg13 before vgg16); ``model_info`` returns an entry's metadata. A user's
own model registers with a name alone (``register_model("mynet")(MyNet)``); the rest of the
metadata is optional.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import CnnzooError, UnknownModelError, out_of_memory_as
from ..geometry import parse_size, whole_number
from ..safeload import check_finite, load_safetensors, load_torch_file


COUNTS = ("num_classes", "in_channels")  # every zoo builder takes them; at least 1

# Where the zoo's variants come from, as ``cnnzoo models`` names them (docs/models.md says more)
FROM_PAPER, FROM_TORCHVISION, FROM_CNNZOO = "paper", "torchvision", "cnnzoo"
FROM_D2L = "d2l classic ed."  # Dive into Deep Learning: d2l-en's classic edition, d2l-zh v2
FROM_D2L_PYTORCH = "Dive-into-DL-PyTorch"  # Tang Shusen's PyTorch port of d2l-zh's 1st edition
FROM_LIU_ER = "Liu Er's PyTorch course"  # study notes on Liu Er's PyTorch course (Bilibili)
FROM_USER = "user"  # registered by the user, not part of the zoo


@dataclass(frozen=True)
class ModelInfo:
    """What a registry entry is: where it comes from and what it expects.

    ``input_size`` is the default (C, H, W) and ``num_classes`` the default class count (None
    where the entry does not say: a user's model takes the data's); ``source`` says in words
    which variant this is (the paper's, a book's, torchvision's layout, the user's own);
    ``fixed_head`` says whether the head is sized for one input size, so that the builder takes
    ``input_size=`` and the model is built again for another size.
    """

    name: str
    family: str
    paper: str
    year: int | None
    input_size: tuple[int, int, int] | None
    num_classes: int | None
    source: str
    description: str = ""
    builder: Callable[..., nn.Module] = field(repr=False, compare=False, default=None)
    fixed_head: bool = False

    def default_input_size(self) -> tuple[int, int, int]:
        """``input_size``, or a one-line ``CnnzooError`` for an entry that records none."""
        if self.input_size is None:
            raise CnnzooError(f"{self.name} records no default input size; give one "
                              f"(input_size=(C, H, W))")
        return self.input_size

    def arguments(self) -> dict[str, inspect.Parameter]:
        """The builder's keyword parameters by name (``**kwargs`` under its own name)."""
        return dict(inspect.signature(self.builder).parameters)

    def takes(self, argument: str) -> bool:
        """Whether the builder takes ``argument`` (by name, or in a ``**kwargs``)."""
        parameters = self.arguments()
        return argument in parameters or any(p.kind is p.VAR_KEYWORD
                                             for p in parameters.values())

    def sized_for(self, input_size) -> dict:
        """The builder arguments that make the model take (C, H, W) inputs: ``input_size``
        itself for a fixed head, otherwise ``in_channels`` where C is not the default."""
        if self.fixed_head:
            return {"input_size": tuple(input_size)}
        if self.takes("in_channels") and (self.input_size is None
                                          or input_size[0] != self.input_size[0]):
            return {"in_channels": input_size[0]}
        return {}


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str | Callable | None = None, *, family: str = "custom",
                   paper: str = "", year: int | None = None, input_size=None,
                   num_classes: int | None = None, source: str = FROM_USER,
                   fixed_head: bool = False, description: str | None = None):
    """File a builder (a function or class returning an ``nn.Module``) in the registry.

    ``register_model("mynet")(MyNet)``, ``@register_model("mynet")`` or ``@register_model``
    (the function's own name) register a model with nothing but its name; the zoo's entries
    also give ``family``, ``paper``, ``year``, ``input_size`` (C, H, W), ``num_classes``,
    ``source`` and ``fixed_head`` (the builder takes ``input_size`` because the head is sized
    for it). ``description`` defaults to the first line of the builder's docstring. A builder
    that takes ``num_classes`` and ``in_channels`` is built to fit the data it trains on.

    A name taken by another builder raises ``ValueError``; the same builder defined again (a
    notebook cell run twice) replaces its entry.
    """
    if callable(name):  # used bare: @register_model
        return register_model()(name)
    if name is not None and not (isinstance(name, str) and name.strip()):
        raise CnnzooError(f"name must be a non-empty string, not {name!r}")
    if input_size is not None:
        input_size = parse_size(input_size)
    if num_classes is not None and not (whole_number(num_classes) and num_classes >= 1):
        raise CnnzooError(f"num_classes must be a whole number of at least 1, not "
                          f"{num_classes!r}")
    if year is not None and not whole_number(year):
        raise CnnzooError(f"year must be a whole number, not {year!r}")

    def decorate(fn):
        if not callable(fn):
            raise CnnzooError(f"register_model files a function or class that builds a model, "
                              f"not {type(fn).__name__}")
        key = name or fn.__name__
        known = _REGISTRY.get(key)
        if known is not None and _definition(known.builder) != _definition(fn):
            raise ValueError(f"model {key!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = ModelInfo(key, family, paper, year, input_size, num_classes,
                                   source, doc[0] if doc and description is None
                                   else description or "", fn, fixed_head)
        return fn

    return decorate


def _definition(fn) -> tuple[str, str]:
    """Where a builder is defined: the same for a function or class defined again."""
    return (getattr(fn, "__module__", ""), getattr(fn, "__qualname__", repr(fn)))


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str | None = None, *, weights: bool = False) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (``"resnet*"``), naturally sorted;
    with ``weights=True`` only those that ship trained weights.

    A pattern without wildcards matches names that contain it.
    """
    if not isinstance(weights, bool):
        raise CnnzooError(f"weights={weights!r}: weights must be True or False")
    names = _REGISTRY.keys()
    if weights:
        from .weights import shipped_names

        names = [name for name in names if name in shipped_names()]
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

    ``weights="fashion-mnist"`` loads the trained weights cnnzoo ships for the model
    (``cnnzoo.get_weights``, ``list_models(weights=True)``). Any other ``weights`` is a
    state_dict file to load into the built model with ``strict=True``: a ``.safetensors`` file,
    or a ``torch.save``'d dict read with ``weights_only=True`` (a file that would run code is
    refused). A torchvision state_dict fits the torchvision-compatible
    variants unchanged. A bad file, or one that does not fit, raises ``CnnzooError``; so does a
    model whose weights alone do not fit in memory (a fixed-size head built for a huge input).
    """
    from .weights import TAGS

    builder = model_info(name).builder
    if weights is not None and not isinstance(weights, (str, os.PathLike)) or weights == "":
        raise CnnzooError(f"weights={weights!r}: give {' or '.join(map(repr, TAGS))} (the "
                          f"weights cnnzoo ships) or the path of a weights file (.safetensors "
                          f"or a torch.save'd state_dict)")
    shipped = None
    if weights in TAGS:  # a file of that name is given as ./fashion-mnist
        from .weights import get_weights

        shipped = get_weights(name, weights)
    _check_arguments(name, builder, kwargs)
    with out_of_memory_as(f"{name}{_built_for(kwargs)} does not fit in memory (its layers' "
                          f"weights alone); try a smaller "
                          f"{'input size' if 'input_size' in kwargs else 'model'}"):
        try:
            model = builder(**kwargs)
        except CnnzooError:
            raise
        except ValueError as error:  # a layer's own range check: dropout=1.5
            raise CnnzooError(f"{name}{_built_for(kwargs)}: {error}") from error
    if shipped is not None:
        _load_state(model, shipped.state_dict(), shipped.path, name)
    elif weights is not None:
        _load_state_file(model, weights, name)
    return model


def _check_arguments(name: str, builder, kwargs: dict) -> None:
    """A one-line ``CnnzooError`` for a keyword the builder does not take, or a value of the
    wrong kind: ``num_classes`` and ``in_channels`` whole numbers of at least 1, the others of
    their default's type (True or False for a flag, a finite number for a rate). None is taken
    where it is the default; ``input_size`` is checked where it is read."""
    parameters = inspect.signature(builder).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for key, value in kwargs.items():
        if key not in parameters:
            if open_ended:  # a builder of the user's that takes **kwargs: its own to check
                continue
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
    _load_state(model, state, path, name)


def _load_state(model: nn.Module, state: dict, path, name: str) -> None:
    """``model.load_state_dict(state, strict=True)``, a mismatch named in one line."""
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
    check_finite(model.state_dict(), path)

