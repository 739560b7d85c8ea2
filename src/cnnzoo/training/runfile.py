"""A run described in a file: ``read_run_file(path)`` gives ``train``'s keyword arguments.

The file is YAML or JSON, and its form is that of a run's ``config.json``, so a run's own
record reruns it. Its keys are ``train``'s: ``model``, ``data``, ``data_dir``, ``seed``,
``device``, ``val``, ``target_acc``, ``deterministic``, ``tensorboard``, ``train_subset``,
``test_subset``, ``model_args``, the fast-path switches, and ``recipe``: a recipe's name, or a
mapping of its fields whose ``name`` is the recipe they change (``{name: modern, lr: 0.1}``).
A recipe field may also stand at the top level (``epochs: 5``). What a record holds beyond
the choices (the classes and sizes found, versions, the device used, the time) is what the
run found, not what it was asked: it is ignored. A key of neither kind, or a value of the
wrong type, is one ``CnnzooError`` line naming the file and the key.

YAML is read with PyYAML's safe loader, taught YAML 1.2's numbers: ``1e-3`` is a number (to
YAML 1.1, as PyYAML reads it by default, it is a string).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import yaml

from .._io import TEXT_LIMIT, regular_file
from ..data.catalog import IN_MEMORY
from ..errors import CnnzooError
from .config import CHECKS, FAST_PATH
from .recipes import RECIPES, FieldError, Recipe, field_value

# the keys of a run's choices, as train() takes them
RUN_KEYS = ("model", "data", "recipe", "data_dir", "seed", "device", "train_subset",
            "test_subset", "val", "target_acc", "deterministic", "tensorboard", "model_args",
            *FAST_PATH)
# what a run's record holds beyond its choices: what it found while it ran
FOUND_KEYS = ("classes", "image_size", "input_size", "data_source", "normalize_stats",
              "device_used", "torch", "cnnzoo", "python", "threads", "world_size", "created",
              "fast_path", "model_kind")
RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe) if f.name != "name")

# YAML 1.2's floats (1e-3, .5, 1.0e+3), which YAML 1.1 reads as strings when they lack a dot
_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+"
                    r"(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.inf|\.Inf|\.INF"
                    r"|\.nan|\.NaN|\.NAN)$")


def read_run_file(path) -> dict:
    """``train``'s keyword arguments as the YAML or JSON file at ``path`` gives them: the
    run's choices, recipe fields among them (``lr=``); see the module's text for the form."""
    path = Path(path)
    content = _parse(path)
    if not isinstance(content, dict):
        raise CnnzooError(f"{path} holds a {type(content).__name__}, not a mapping of a run's "
                          f"settings (model: ..., recipe: ..., epochs: ...)")
    if content.get("model_kind", "registry") != "registry":
        raise CnnzooError(f"{path} is the record of a run of a model of your own "
                          f"({content.get('model')}), which cnnzoo does not keep as code; "
                          f"rerun it from Python, given the model")
    if content.get("data") == IN_MEMORY:
        raise CnnzooError(f"{path} is the record of a run on images given from Python, which "
                          f"cnnzoo does not keep; rerun it from Python, given the images")
    chosen, fields = {}, {}
    for key, value in content.items():
        if not isinstance(key, str) or key not in RUN_KEYS + FOUND_KEYS + RECIPE_FIELDS:
            raise CnnzooError(f"{path}: unknown key {key!r}; a run's keys are "
                              f"{', '.join(RUN_KEYS)}, and the recipe's fields "
                              f"({', '.join(RECIPE_FIELDS)})")
        if key in RECIPE_FIELDS:
            fields[key] = value
        elif key in RUN_KEYS:
            chosen[key] = value
    if isinstance(chosen.get("recipe"), dict):
        inner = dict(chosen["recipe"])
        chosen["recipe"] = inner.pop("name", "d2l")
        for key in inner:
            if key not in RECIPE_FIELDS:
                raise CnnzooError(f"{path}: unknown recipe field {key!r}; its fields are "
                                  f"name, {', '.join(RECIPE_FIELDS)}")
            if key in fields:
                raise CnnzooError(f"{path}: {key} is given twice, at the top and in recipe; "
                                  f"give it once")
        fields.update(inner)
    if "created" in content and "val" not in content:
        chosen["val"] = 0  # a run's record without a hold-out: it held none out
    if content.get("fast_path") is not None:
        # a run of fast=True records the switches it chose: rerunning it runs those, measured
        # once, rather than measuring again
        chosen["fast"] = False
    _check(path, chosen, fields)
    return dict(chosen, **fields)


def _parse(path: Path):
    path = regular_file(path, TEXT_LIMIT)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise CnnzooError(f"{path} is missing") from error
    except UnicodeDecodeError as error:
        raise CnnzooError(f"{path} is not a text file (not UTF-8)") from error
    except OSError as error:
        raise CnnzooError(f"cannot read {path}: {error.strerror}") from error
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise CnnzooError(f"{path} is not valid JSON ({error})") from error
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader's subclass
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f"line {where.line + 1}: " if where is not None else ""
        what = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise CnnzooError(f"{path} is not YAML ({at}{what})") from error


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _check(path: Path, chosen: dict, fields: dict) -> None:
    """A one-line ``CnnzooError`` naming the file and the key of a value of the wrong type."""
    for key in ("model", "data"):
        if key in chosen and not isinstance(chosen[key], str):
            raise CnnzooError(f"{path}: {key} is {chosen[key]!r}; give a {key}'s name")
    recipe = chosen.get("recipe")
    if recipe is not None and recipe not in RECIPES:
        raise CnnzooError(f"{path}: recipe is {recipe!r}; give one of {', '.join(RECIPES)}, "
                          f"or a mapping of its fields with its name")
    for key, value in chosen.items():
        if key in CHECKS and value is not None and not CHECKS[key][1](value):
            raise CnnzooError(f"{path}: its {key} is {value!r}, where it must be "
                              f"{CHECKS[key][0]}")
    for key, value in fields.items():
        try:
            fields[key] = field_value(key, value)
        except FieldError as error:
            raise CnnzooError(f"{path}: its {key} is {value!r}, where it must be "
                              f"{error.what}") from error
    try:  # each field's range, as a recipe checks it
        Recipe().replace(**fields)
    except FieldError as error:
        raise CnnzooError(f"{path}: its {error.name} is {error.value!r}, where it must be "
                          f"{error.what}") from error
