"""Training recipes: typed configurations, the textbook's and our own, per model.

A ``Recipe`` holds every knob of a run; ``recipe_for(model, "d2l" | "modern" | "best")``
returns the one for a registered model, and ``Recipe.replace(**overrides)`` changes single
fields (the command-line flags). The run directory records the fully resolved recipe.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass

from ..errors import CnnzooError
from ..geometry import whole_number

RECIPES = ("d2l", "modern", "best")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "onecycle", "cosine")
FLOAT32_MAX = 3.4028234663852886e38  # the optimisers hold lr and weight decay as float32
FLOAT32_TINY = 1.1754943508222875e-38  # float32's smallest normal number: 1e-320 becomes 0


@dataclass(frozen=True)
class Recipe:
    name: str = "d2l"
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.9                 # peak learning rate
    optimizer: str = "sgd"          # sgd | adamw
    momentum: float = 0.0           # SGD only; d2l uses plain SGD
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"      # constant | onecycle (linear warm-up, cosine down) | cosine
    warmup_fraction: float = 0.0    # of all steps, for onecycle and cosine
    label_smoothing: float = 0.0
    init: str = "xavier"            # xavier (d2l's train_ch6) | default (the model's own)
    resize: int | None = None       # input side; None: the model's default input size
    normalize: bool = False         # d2l feeds ToTensor() output in [0, 1] unnormalised
    flip: bool = False              # random horizontal flip
    crop_padding: int = 0           # random crop after this much zero padding
    erasing: float = 0.0            # random-erasing probability
    grad_clip: float | None = None  # max gradient norm
    eval_batch_size: int = 512     # fastest on a small CPU cache, ample on a GPU
    eval_flip: bool = False         # test-time augmentation: average the logits of each image
                                    # and its mirror image (evaluation and prediction)

    def replace(self, **overrides) -> "Recipe":
        """A copy with some fields changed; None values are ignored (flags not given)."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise CnnzooError(f"unknown recipe field(s): {', '.join(sorted(unknown))}; the "
                              f"fields are: {', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **overrides).validated()

    def validated(self) -> "Recipe":
        """Check every field; a bad one raises a one-line CnnzooError."""
        checks = [  # field, whether its value is good, what it must be
            ("epochs", self.epochs >= 1, "at least 1"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("lr", FLOAT32_TINY <= self.lr <= FLOAT32_MAX, "a positive number float32 can "
             "hold (1.2e-38 to 3.4e38)"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
            ("schedule", self.schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay == 0
             or FLOAT32_TINY <= self.weight_decay <= FLOAT32_MAX,
             "0 or a positive number float32 can hold (1.2e-38 to 3.4e38)"),
            ("warmup_fraction", 0 <= self.warmup_fraction < 1, "in [0, 1)"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("init", self.init in ("xavier", "default"), "xavier or default"),
            ("resize", self.resize is None or self.resize >= 1, "at least 1"),
            ("erasing", 0 <= self.erasing <= 1, "a probability, in [0, 1]"),
            ("crop_padding", self.crop_padding >= 0, "0 or more"),
            ("grad_clip", self.grad_clip is None
             or FLOAT32_TINY <= self.grad_clip <= FLOAT32_MAX,
             "a positive number float32 can hold (1.2e-38 to 3.4e38)"),
            ("eval_batch_size", self.eval_batch_size >= 1, "at least 1"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise FieldError(name, getattr(self, name), what)
        return self

    @classmethod
    def from_record(cls, record: dict, where) -> "Recipe":
        """The recipe a run's ``config.json`` holds (``where``: the file), each field checked
        as a new run's is: a field this version does not know (a newer version's run, or an
        edit), a value of the wrong type or range, is one ``CnnzooError`` naming the file.
        A field the record lacks takes its default."""
        from .. import __version__

        known = {f.name for f in dataclasses.fields(cls)}
        for key in record:
            if key not in known:
                raise CnnzooError(f"{where} holds a recipe field {key!r} that cnnzoo "
                                  f"{__version__} does not know (a run of a newer version?); "
                                  f"its fields are: {', '.join(sorted(known))}")
        try:
            values = {key: field_value(key, value) for key, value in record.items()}
            return cls(**values).validated()
        except FieldError as error:
            raise CnnzooError(f"{where} is damaged: its recipe's {error.name} is "
                              f"{error.value!r}, where it must be {error.what}") from error


class FieldError(CnnzooError):
    """A recipe field of the wrong type or range: ``lr=0: lr must be ...``."""

    def __init__(self, name: str, value, what: str):
        super().__init__(f"{name}={value!r}: {name} must be {what}")
        self.name, self.value, self.what = name, value, what


def field_value(name: str, value):
    """``value`` as the recipe's field ``name`` holds it (NumPy's numbers as Python's; None
    where the field may be unset), or a one-line ``CnnzooError`` for a value of another type:
    ``lr='0.1'``, ``epochs=1.5``, ``flip=1``."""
    hints = typing.get_type_hints(Recipe)
    kinds = typing.get_args(hints[name]) or (hints[name],)
    if value is None and type(None) in kinds:
        return None
    if bool in kinds:
        fits, kind = isinstance(value, bool), bool
    elif int in kinds and float not in kinds:
        fits, kind = whole_number(value), int
    elif float in kinds:
        fits = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(value))
        kind = float
    else:
        fits, kind = isinstance(value, str), str
    if not fits:
        names = {bool: "True or False", int: "a whole number", float: "a finite number",
                 str: "a string"}
        wanted = " or ".join(names[k] for k in kinds if k is not type(None))
        raise FieldError(name, value, wanted + (" or None" if type(None) in kinds else ""))
    return kind(value)


# The textbook's recipes (d2l classic train_ch6): lr, batch size, resize per model.
D2L = {
    "lenet5_d2l": (0.9, 256, 28),
    "lenet5_maxpool": (0.9, 256, 28),
    "lenet5_bn_d2l": (1.0, 256, 28),
    "lenet5_bn_scratch_d2l": (1.0, 256, 28),
    "alexnet_d2l": (0.01, 128, 224),
    "vgg11_d2l": (0.05, 128, 224),
    "nin_d2l": (0.1, 128, 224),
    "googlenet_d2l": (0.1, 128, 96),
    "resnet18_d2l": (0.05, 256, 96),
    "densenet_d2l": (0.1, 256, 96),
    # not in the book: the MNIST nets of Liu Er's PyTorch course and the 1998 LeNet (which
    # expects 32x32 inputs).
    # The 1998 LeNet's logits are negated RBF distances, hundreds in size at the start: plain
    # SGD at 0.1 (or 0.01) blows them up and it stays at chance; at 0.005 it learns
    # (docs/training.md, Recipes).
    "lenet5": (0.005, 256, 32),
    "inception_mnist": (0.1, 256, None),
    "residual_mnist": (0.1, 256, None),
    "resnet9_fmnist": (0.05, 256, None),
}
# Models the book does not train: the nearest textbook recipe of their family.
D2L_BY_FAMILY = {
    "lenet": (0.9, 256, None),
    "alexnet": (0.01, 128, 224),
    "vgg": (0.05, 128, 224),
    "nin": (0.1, 128, 224),
    "googlenet": (0.1, 128, 96),
    "resnet": (0.05, 256, 96),
    "densenet": (0.1, 256, 96),
    "mobilenet": (0.05, 256, 96),
}

# Our own recipe, the same for every model: AdamW with a one-cycle schedule (linear warm-up,
# cosine decay), label smoothing, normalised inputs and light augmentation, in the book's 10
# epochs or fewer. Adam is what Dive-into-DL-PyTorch trains with, to results above the book's
# SGD ones in fewer epochs (docs/training.md, Recipes); plain or Nesterov SGD at the book's
# rates with momentum stalls the nets without BatchNorm (AlexNet, VGG, NiN, GoogLeNet).
# The small LeNets take a higher rate and their own initialisation; the deep nets keep the
# book's Xavier initialisation, without which GoogLeNet (no BatchNorm) does not start learning.
MODERN_SMALL = dict(optimizer="adamw", lr=0.01, weight_decay=0.05, batch_size=128,
                    schedule="onecycle", warmup_fraction=0.15, label_smoothing=0.1,
                    normalize=True, flip=True, init="default")
MODERN_DEEP = dict(optimizer="adamw", lr=0.002, weight_decay=0.05, batch_size=128,
                   schedule="onecycle", warmup_fraction=0.15, label_smoothing=0.1,
                   normalize=True, flip=True, crop_padding=2, init="xavier")


# The leaderboard's `best` entry: the longest, most regularised recipe, made for resnet9_fmnist
# (BatchNorm, 1.6 M parameters): SGD with Nesterov momentum on a one-cycle schedule, the
# weight decay and label smoothing of Page's DAWNBench ResNet-9, flips, 2 px crops and random
# erasing (Zhong et al. 2017 report it helps on Fashion-MNIST), 30 epochs.
BEST = dict(optimizer="sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4,
            batch_size=256, schedule="onecycle", warmup_fraction=0.15, label_smoothing=0.1,
            normalize=True, flip=True, crop_padding=2, erasing=0.25, init="default", epochs=30)
BEST_MODELS = ("resnet9_fmnist",)


# A model neither the book nor its family's recipe knows (one of the user's): the book's
# ResNet rate at a batch most models take, the data at its own size.
D2L_OTHERS = (0.05, 128, None)


def recipe_for(model_name: str, recipe: str = "d2l") -> Recipe:
    """The named recipe (``"d2l"``, ``"modern"`` or ``"best"``) resolved for a registered
    model."""
    from ..models import model_info

    info = model_info(model_name)
    return named_recipe(recipe, model_name, info.family, info.input_size)


def named_recipe(recipe: str, model_name: str | None = None, family: str = "custom",
                 input_size=None) -> Recipe:
    """The named recipe for a model of that name, family and default input size (C, H, W):
    what ``recipe_for`` gives a registered model, and ``train`` a module of the user's."""
    if recipe not in RECIPES:
        raise CnnzooError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    lr, batch_size, resize = (D2L.get(model_name) or D2L_BY_FAMILY.get(family, D2L_OTHERS))
    base = Recipe(name="d2l", lr=lr, batch_size=batch_size, resize=resize)
    if recipe == "d2l":
        return base.validated()
    if recipe == "best":
        return dataclasses.replace(base, name="best", **BEST).validated()
    # a model that records no input size is taken as a small one, as the data will be
    small = family == "lenet" or input_size is None or input_size[1] <= 32
    fields = MODERN_SMALL if small else MODERN_DEEP
    return dataclasses.replace(base, name="modern", **fields).validated()
