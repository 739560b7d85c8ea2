"""Trained weights that ship inside the package: ``get_weights(NAME, "fashion-mnist")``.

Each set is a safetensors file and a JSON record beside it, under ``pretrained/TAG/``:
``NAME.safetensors`` and ``NAME.json``. The record (``Weights.meta``) says what the file is and
how it was made: test accuracy over the seeds trained (the file is one of them, named), the
validation accuracy that chose it, parameters, mult-adds, the file's size and SHA-256, the
recipe, the command, the date and the versions, and the configuration of the run that wrote it
(``Weights.config``, in the form of a run's ``config.json``). A file whose SHA-256 is not its
record's is refused before it is read. ``benchmarks/train_weights.py`` trains them all again and
writes the records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CnnzooError
from .registry import list_models, model_info

PRETRAINED = Path(__file__).parent / "pretrained"
TAGS = ("fashion-mnist",)  # the data sets weights are trained on; a tag names one


@dataclass(frozen=True)
class Transform:
    """uint8 images ``(N, C, H, W)`` (or one ``(C, H, W)``) in, the model's float32 input out:
    scaled to [0, 1], resized (bilinear, antialiased when shrinking) and normalised as the
    weights' run fed its test images."""

    size: tuple[int, int]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        from ..data.batches import resized

        images = torch.as_tensor(images)
        if images.dtype != torch.uint8:
            raise CnnzooError(f"the transform takes uint8 images (N, C, H, W), not "
                              f"{images.dtype}")
        batch = images.unsqueeze(0) if images.dim() == 3 else images
        if batch.dim() != 4:
            raise CnnzooError(f"the transform takes images (N, C, H, W) or (C, H, W), not "
                              f"shape {tuple(images.shape)}")
        x = resized(batch.to(torch.float32).div_(255), self.size)
        if self.mean is not None:
            mean = torch.tensor(self.mean, device=x.device).reshape(1, -1, 1, 1)
            std = torch.tensor(self.std, device=x.device).reshape(1, -1, 1, 1)
            x = x.sub_(mean).div_(std)
        return x if images.dim() == 4 else x[0]


@dataclass(frozen=True)
class Weights:
    """A shipped set of trained weights: its file, its record (``meta``) and the run's
    configuration (``config``)."""

    name: str
    tag: str
    path: Path
    meta: dict = field(repr=False)

    @property
    def config(self) -> dict:
        return self.meta["config"]

    @property
    def classes(self) -> list[str]:
        return list(self.config["classes"])

    def transforms(self) -> Transform:
        """What maps uint8 images to this model's input (as torchvision's weight enums do)."""
        config = self.config
        stats = config.get("normalize_stats")
        return Transform(tuple(config["input_size"][1:]),
                         *((tuple(stats[0]), tuple(stats[1])) if stats else ()))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights, read once their file's SHA-256 matches the record's."""
        from ..safeload import load_safetensors

        data = self.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.meta["sha256"]:
            raise CnnzooError(f"{self.path} is not the file its record describes (its SHA-256 "
                              f"differs from {self.path.with_suffix('.json').name}'s); reinstall "
                              f"cnnzoo")
        return load_safetensors(self.path)

    def build(self) -> torch.nn.Module:
        """The model with these weights, in eval mode."""
        from .registry import get_model

        return get_model(self.name, weights=self.tag).eval()


def get_weights(name: str, tag: str = "fashion-mnist") -> Weights:
    """The weights shipped for registry model ``name`` trained on ``tag``'s data; a model
    without them is a one-line ``CnnzooError`` that lists those with them."""
    model_info(name)  # an unknown name says so, with "did you mean"
    if tag not in TAGS:
        raise CnnzooError(f"weights={tag!r}: cnnzoo ships weights for {', '.join(TAGS)}")
    record = PRETRAINED / tag / f"{name}.json"
    if not record.is_file():
        shipped = ", ".join(list_weights(tag)) or "none"
        raise CnnzooError(f"cnnzoo ships no {tag} weights for {name}; it has them for: "
                          f"{shipped}")
    meta = json.loads(record.read_text())
    return Weights(name, tag, record.with_suffix(".safetensors"), meta)


def list_weights(tag: str | None = None) -> list[str]:
    """The registry names that ship trained weights (for ``tag``, or for any), sorted as
    ``list_models`` sorts."""
    names = shipped_names(tag)
    return [name for name in list_models() if name in names]


def shipped_names(tag: str | None = None) -> set[str]:
    tags = TAGS if tag is None else (tag,)
    return {path.stem for t in tags for path in (PRETRAINED / t).glob("*.json")}
