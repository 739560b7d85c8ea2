"""A run's configuration: what ``train`` is asked for, typed and validated before any work.

``RunConfig`` holds the choices of a new run: the model, the data, the recipe with its overrides,
the seed, the device and the fast path. ``RunConfig.resolve`` builds one from ``train``'s
parameters, checking each (a wrong type or value is one ``CnnzooError`` naming the parameter:
``lr=``, ``train_subset=``), and ``for_resume`` refuses what contradicts a run being resumed:
a resumed run keeps its own model, data, recipe and fast path, so of the parameters of a new
run only ``epochs``, ``device`` and ``data_dir`` may be given beside ``resume``.

``RunConfig.record()`` is the form written to a run's ``config.json``; the loop adds what it
finds while preparing (the data's classes and sizes, the device used, versions).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CnnzooError
from ..geometry import whole_number
from .recipes import Recipe, field_value, named_recipe, recipe_for

SEED_LIMIT = 2 ** 64  # torch.manual_seed takes 0 .. 2**64 - 1
FAST_PATH = ("compile", "amp", "channels_last", "cuda_graphs", "fast")
DEFAULT_MODEL = "lenet5_d2l"  # what train and the command train without a model's name
# train's parameters that set up a new run, besides the model, data and recipe
RUN_PARAMETERS = ("epochs", "lr", "batch_size", "resize", "device", "seed", *FAST_PATH,
                  "data_dir", "train_subset", "test_subset", "val", "target_acc",
                  "deterministic", "tensorboard", "model_args")
# the parameters of a new run that a resumed run may take: where it runs and for how long
RESUME_MAY_CHANGE = ("epochs", "device", "data_dir")


@dataclass(frozen=True)
class RunConfig:
    """The validated choices of a new run (``train``'s parameters, resolved)."""

    model: str                        # a registry name, or the class name of the user's model
    recipe: Recipe
    data: str = "fashion-mnist"       # a data set's canonical name, or "in-memory"
    model_kind: str = "registry"      # registry | module (an nn.Module) | builder (a callable)
    model_args: dict = field(default_factory=dict)  # further arguments of the model's builder
    data_dir: str | None = None       # where the data set's files are (absolute)
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    amp: bool = False                 # bf16 autocast
    channels_last: bool = False
    cuda_graphs: bool = False
    fast: bool = False                # choose amp / channels_last / cuda_graphs by measuring
    train_subset: int | None = None   # a seeded, stratified subset of the training split
    test_subset: int | None = None
    val: int | float = 0              # images held out of the training split for validation
                                      # (a fraction below 1 of it; 0: none, the test set is
                                      # evaluated after every epoch instead)
    target_acc: float | None = None   # stop once the epoch's evaluation reaches this accuracy
    deterministic: bool = False       # torch's deterministic algorithms only
    tensorboard: bool = False         # TensorBoard event files in the run directory

    def record(self) -> dict:
        """The configuration as a run directory's ``config.json`` holds it."""
        record = dataclasses.asdict(self)
        record["recipe"] = dataclasses.asdict(self.recipe)
        return record

    @classmethod
    def resolve(cls, model: str, kind: str, *, data: str, recipe, epochs=None, lr=None,
                batch_size=None, resize=None, model_args=None, data_dir=None, seed=None,
                device=None, train_subset=None, test_subset=None, val=None,
                target_acc=None, deterministic=None, tensorboard=None, overrides=None,
                **fast_path) -> "RunConfig":
        """A new run's configuration from ``train``'s parameters (None: not given), every
        one checked; ``model`` is the registry name (or the user's model's class name) and
        ``data`` the canonical data set name."""
        check_parameters(epochs=epochs, lr=lr, batch_size=batch_size, resize=resize,
                         seed=seed, train_subset=train_subset, test_subset=test_subset,
                         device=device, data_dir=data_dir, model_args=model_args, val=val,
                         target_acc=target_acc, deterministic=deterministic,
                         tensorboard=tensorboard, **fast_path)
        overrides = check_overrides(dict(overrides or {}))
        if not isinstance(recipe, (str, Recipe)):
            raise CnnzooError(f"recipe={recipe!r}: give a recipe's name ('d2l', 'modern', "
                              f"'best') or a Recipe")
        base = recipe if isinstance(recipe, Recipe) else (
            recipe_for(model, recipe) if kind == "registry" else named_recipe(recipe))
        if kind == "module" and "init" not in overrides:
            # a module given as it is keeps its weights (trained ones, perhaps): no recipe
            # initialises it unless told to (init="xavier")
            base = dataclasses.replace(base, init="default")
        whole = {name: None if value is None else int(value) for name, value in
                 dict(epochs=epochs, batch_size=batch_size, resize=resize,
                      train_subset=train_subset, test_subset=test_subset, seed=seed).items()}
        chosen = base.replace(epochs=whole["epochs"], lr=None if lr is None else float(lr),
                              batch_size=whole["batch_size"], resize=whole["resize"],
                              **overrides)
        return cls(model=model, recipe=chosen, data=data, model_kind=kind,
                   model_args=dict(model_args or {}),
                   data_dir=None if data_dir is None else os.path.abspath(data_dir),
                   seed=whole["seed"] or 0, device="auto" if device is None else device,
                   train_subset=whole["train_subset"], test_subset=whole["test_subset"],
                   val=default_val(data, chosen.name) if val is None else
                   (int(val) if whole_number(val) else float(val)),
                   target_acc=None if target_acc is None else float(target_acc),
                   deterministic=bool(deterministic), tensorboard=bool(tensorboard),
                   **{name: bool(fast_path.get(name)) for name in FAST_PATH})


def default_val(data: str, recipe_name: str) -> int:
    """How many training images a run holds out for validation unless told: the data set's
    ``VALIDATION`` count (5,000 of Fashion-MNIST's 60,000), so that choosing a recipe or an
    epoch never looks at the test set; none for the textbook's recipe, which keeps the book's
    protocol (the whole training split, the test set evaluated after every epoch)."""
    from ..data.catalog import VALIDATION

    return 0 if recipe_name == "d2l" else VALIDATION.get(data, 0)


def new_run(model, data, recipe, given: dict, overrides: dict):
    """A new run's ``RunConfig`` from ``train``'s arguments (``given``: its parameters by name,
    None where not given; ``overrides``: recipe fields given as keywords), with the data sets
    given from Python (or None)."""
    from ..data.catalog import IN_MEMORY

    name, kind = model_kind(DEFAULT_MODEL if model is None else model)
    data_name, sets = data_sets("fashion-mnist" if data is None else data)
    if data_name == IN_MEMORY and given.get("data_dir") is not None:
        raise CnnzooError("data_dir= says where a named data set's files are; the data given "
                          "from Python has none")
    run = RunConfig.resolve(name, kind, data=data_name,
                            recipe="d2l" if recipe is None else recipe,
                            overrides=overrides, **given)
    return run, sets


# train's parameters: name -> (what it must be, the check)
def _whole_at_least_one(value) -> bool:
    return whole_number(value) and value >= 1


def _positive_finite(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def _path_like(value) -> bool:
    return isinstance(value, (str, os.PathLike))


def _val(value) -> bool:
    if whole_number(value):
        return value >= 0
    return _positive_finite(value) and value < 1


CHECKS = {
    "epochs": ("a whole number of at least 1", _whole_at_least_one),
    "batch_size": ("a whole number of at least 1", _whole_at_least_one),
    "resize": ("a whole number of at least 1 (the side of a square input)", _whole_at_least_one),
    "train_subset": ("a whole number of at least 1 (images)", _whole_at_least_one),
    "test_subset": ("a whole number of at least 1 (images)", _whole_at_least_one),
    "lr": ("a positive number", _positive_finite),
    "seed": ("a whole number from 0 to 2**64 - 1",
             lambda v: whole_number(v) and 0 <= v < SEED_LIMIT),
    "device": ("a device name such as 'cpu', 'cuda', 'cuda:1' or 'auto'",
               lambda v: isinstance(v, str)),
    "data_dir": ("a folder's path", lambda v: _path_like(v) and str(v).strip() != ""),
    "model_args": ("a dict of the model builder's arguments", lambda v: isinstance(v, dict)),
    "val": ("a number of training images to hold out (0: none) or a fraction of them below 1",
            _val),
    "target_acc": ("an accuracy above 0 and at most 1",
                   lambda v: _positive_finite(v) and v <= 1),
    **{name: ("True or False", lambda v: isinstance(v, bool))
       for name in (*FAST_PATH, "deterministic", "tensorboard")},
}


def check_parameters(**given) -> None:
    """A one-line ``CnnzooError`` for the first parameter of ``train`` given (not None) with
    a value of the wrong type or range: ``lr='0.1'``, ``batch_size=True``, ``epochs=1.5``."""
    for name, value in given.items():
        if value is None:
            continue
        what, fits = CHECKS[name]
        if not fits(value):
            raise CnnzooError(f"{name}={value!r}: {name} must be {what}")


def check_overrides(overrides: dict) -> dict:
    """The recipe fields given to ``train`` as keywords (``weight_decay=5e-4``), each of the
    field's type (NumPy's numbers taken as Python's): a one-line ``CnnzooError`` naming an
    unknown field or a wrong value. Returns them as the recipe holds them."""
    names = [f.name for f in dataclasses.fields(Recipe) if f.name != "name"]
    checked = {}
    for name, value in overrides.items():
        if name not in names:
            raise CnnzooError(f"train() takes no parameter {name!r}; the recipe's fields are: "
                              f"{', '.join(names)}")
        if value is not None:
            checked[name] = field_value(name, value)
    return checked


MODEL_KINDS = ("registry", "module", "builder")
MAX_IMAGE_ELEMENTS = 3 * 4096 * 4096  # an image of a run: a 4096x4096 photo, 200 MB as floats
# a run's record beyond what CONFIG_FIELDS of rundir requires: key, its default where a record
# lacks it, what it must be, the check (None passes where it is the default: unset)
RECORD_FIELDS = {
    **{name: (None, *CHECKS[name]) for name in ("train_subset", "test_subset", "data_dir")},
    "seed": (0, *CHECKS["seed"]),
    "device": ("auto", *CHECKS["device"]),
    "model_args": ({}, *CHECKS["model_args"]),
    "model_kind": ("registry", "one of " + ", ".join(MODEL_KINDS), lambda v: v in MODEL_KINDS),
    "val": (0, *CHECKS["val"]),
    "target_acc": (None, *CHECKS["target_acc"]),
    **{name: (False, *CHECKS[name]) for name in (*FAST_PATH, "deterministic", "tensorboard")},
}


def check_record(config: dict, where) -> None:
    """Check a run's record read back from ``where`` (its ``config.json``) as a new run's
    configuration is checked, a key the record lacks taking its default; a value of the
    wrong type or range (a damaged or edited file) is one ``CnnzooError`` naming the file and
    the key. The recipe (``Recipe.from_record``) and the sizes are checked as well."""
    for name, (default, what, fits) in RECORD_FIELDS.items():
        value = config.setdefault(name, default)
        if not (fits(value) or (value is None and default is None)):
            raise CnnzooError(f"{where} is damaged: its {name} is {value!r}, where it must be "
                              f"{what}")
    for name in ("image_size", "input_size"):
        channels, height, width = config[name]
        if channels * height * width > MAX_IMAGE_ELEMENTS:
            raise CnnzooError(f"{where} is damaged: its {name} {channels}x{height}x{width} is "
                              f"beyond any image a run trains on (at most "
                              f"{MAX_IMAGE_ELEMENTS:,} values)")
    if config["input_size"][0] != config["image_size"][0]:
        raise CnnzooError(f"{where} is damaged: its input_size and image_size have other "
                          f"channel counts ({config['input_size'][0]}, "
                          f"{config['image_size'][0]})")
    stats = config.get("normalize_stats")
    if stats is not None and not _statistics(stats, config["image_size"][0]):
        raise CnnzooError(f"{where} is damaged: its normalize_stats must be [means, stds], "
                          f"{config['image_size'][0]} finite numbers each, the stds above 0")


def _statistics(stats, channels: int) -> bool:
    def numbers_of(values) -> bool:
        return (isinstance(values, list) and len(values) == channels
                and all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                        and math.isfinite(v) for v in values))

    return (isinstance(stats, list) and len(stats) == 2 and all(map(numbers_of, stats))
            and all(v > 0 for v in stats[1]))


def for_resume(run_dir: Path, config: dict, model, given: dict) -> None:
    """Refuse, in one line naming them, the parameters of a new run given beside ``resume``
    (``given``: name -> value, None for not given); ``model`` is what ``train`` was given
    (None, the run's own name, or the user's model for a run of one)."""
    from torch import nn

    kind = config.get("model_kind", "registry")
    if kind == "registry":
        if model is not None and model != config["model"]:
            shown = model if isinstance(model, str) else (
                type(model).__name__ if isinstance(model, nn.Module) else
                getattr(model, "__name__", type(model).__name__))
            raise CnnzooError(f"resume={str(run_dir)!r} continues the run of "
                              f"{config['model']}, not {shown}; leave out model= or give "
                              f"{config['model']!r}")
    elif model is None or isinstance(model, str):
        raise CnnzooError(f"{run_dir} is a run of a model of your own ({config['model']}), "
                          f"which cnnzoo does not keep as code; it is resumed from Python "
                          f"only, given the model again")
    conflicts = [name for name, value in given.items() if name not in RESUME_MAY_CHANGE
                 and not (value is None or value is False or value == {})]
    if conflicts:
        listed = ", ".join(f"{name}=" for name in conflicts)
        raise CnnzooError(f"resume= continues a run as it was set up; leave out {listed} "
                          f"(only epochs=, device= and data_dir= may be given)")


def _label_names(data) -> tuple[str, ...]:
    """Class names "0", "1", ... for as many classes as the labels of both splits need (a
    small test set may lack the last class); labels that are not whole numbers are left for
    ``DataSet.from_tensors`` to refuse, naming its split."""
    import torch

    counts = []
    for _, labels in data:
        try:
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            continue
        if labels.numel() and not (labels.is_floating_point() or labels.is_complex()):
            counts.append(int(labels.max()) + 1)
    return tuple(str(index) for index in range(max(counts, default=0)))


def model_kind(model) -> tuple[str, str]:
    """(name, kind) of what ``train`` was given as its model: a registry name (checked here,
    with suggestions for a misspelt one), an ``nn.Module`` of the user's (its class name), or
    a function or class that builds one."""
    from torch import nn

    from ..models import model_info

    if isinstance(model, str):
        return model_info(model).name, "registry"
    if isinstance(model, nn.Module):
        return type(model).__name__, "module"
    if callable(model):
        from .rundir import builder_name

        return builder_name(model), "builder"
    raise CnnzooError(f"model={type(model).__name__}: give a registered model's name (see "
                      f"list_models()), an nn.Module, or a function that builds one")


def data_sets(data):
    """What ``train`` was given as its data: (canonical name, None) for a registered data set,
    or ("in-memory", (train, test)) for a pair of ``DataSet``s or of (images, labels) tensors
    or arrays, the two splits with the same classes."""
    from ..data import DataSet, canonical_name
    from ..data.catalog import IN_MEMORY

    if isinstance(data, str):
        return canonical_name(data), None
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise CnnzooError(f"data={type(data).__name__}: give a data set's name ('fashion-mnist'), "
                          f"or the training and the test set: (train, test), each a DataSet "
                          f"or (images, labels)")
    given = [part for part in data if isinstance(part, DataSet)]
    for split, part in zip(("train", "test"), data):
        if not (isinstance(part, DataSet) or isinstance(part, (tuple, list)) and len(part) == 2):
            raise CnnzooError(f"data's {split} set is a {type(part).__name__}; give a DataSet "
                              f"or (images, labels)")
    if len(given) == 2:
        train, test = data
    else:
        # classes named by a DataSet given beside arrays, or as many as the labels of both
        # splits need (a small test set may lack the last class)
        classes = given[0].classes if given else None
        if classes is None:
            classes = _label_names(data)
        sets = []
        for split, part in zip(("train", "test"), data):
            try:
                sets.append(part if isinstance(part, DataSet) else
                            DataSet.from_tensors(*part, classes=classes))
            except CnnzooError as error:
                raise CnnzooError(f"data's {split} set: {error}") from error
        train, test = sets
    if train.image_size[0] != test.image_size[0]:
        raise CnnzooError(f"data's training images have {train.image_size[0]} channels, its "
                          f"test images {test.image_size[0]}")
    if tuple(train.classes) != tuple(test.classes):
        what = (f"{len(train.classes)} and {len(test.classes)}"
                if len(train.classes) != len(test.classes) else "the same number, named apart")
        raise CnnzooError(f"data's training and test sets have other classes ({what})")
    return IN_MEMORY, (train, test)
