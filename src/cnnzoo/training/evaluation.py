"""Evaluation and prediction: accuracy, per-class accuracy, confusion, top-k; the logits of a
model as a run's evaluations compute them."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .._html import html_table
from ..device import memory_format, pick_device
from ..errors import CnnzooError, CnnzooWarning
from ..geometry import whole_number
from .recipes import Recipe
from .rundir import Run, data_options, load_run

CONFUSION = "confusion.png"


@dataclass(repr=False)
class EvalResult:
    accuracy: float
    per_class: list[float]         # recall of each class
    confusion: list[list[int]]     # rows: true class, columns: predicted class
    classes: list[str]
    num_examples: int
    amp: bool = False              # computed under bf16 autocast, as the run trained
    plot: Path | None = None
    split: str = "test"

    def __repr__(self) -> str:
        worst = min(range(len(self.classes)), key=lambda i: self.per_class[i])
        return (f"EvalResult(accuracy {self.accuracy:.4f} on {self.num_examples:,} "
                f"{self.split} images, {len(self.classes)} classes; lowest: "
                f"{self.classes[worst]} {self.per_class[worst]:.3f})")

    def _repr_html_(self) -> str:
        """The per-class accuracy beside each class's row of the confusion matrix."""
        header = ["class", "accuracy", *(str(i) for i in range(len(self.classes)))]
        rows = [[f"{i} {name}", f"{self.per_class[i]:.3f}", *self.confusion[i]]
                for i, name in enumerate(self.classes)]
        caption = (f"{self.split} accuracy {self.accuracy:.4f} on {self.num_examples:,} images "
                   f"(rows: true class; columns: predicted)")
        return html_table(header, rows, numeric=range(1, len(header)), names=True,
                          caption=caption, inline=True)


def test_logits(net: nn.Module, x: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """The logits of an evaluating ``net`` for ``x``; with ``flip``, the mean of those for each
    image and its mirror image (test-time augmentation)."""
    logits = net(x)
    if flip:
        logits = (logits + net(x.flip(-1))) / 2
    return logits


@torch.inference_mode()
def evaluate_batches(net: nn.Module, batches, num_classes: int, amp: bool = False,
                     channels_last: bool = False, flip: bool = False, on_batch=None):
    """Confusion matrix (true x predicted, int64, on the device) of ``net`` over ``batches``;
    ``flip`` averages each image's logits with its mirror image's; ``on_batch()``, if given,
    is called after each batch."""
    was_training = net.training
    net.eval()
    confusion = None
    layout = memory_format(channels_last)
    try:
        for x, y in batches:
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
                logits = test_logits(net, x.contiguous(memory_format=layout), flip)
            pred = logits.argmax(dim=1)
            counts = torch.bincount(y * num_classes + pred, minlength=num_classes ** 2)
            confusion = counts if confusion is None else confusion + counts
            if on_batch is not None:
                on_batch()
    finally:
        net.train(was_training)
    if confusion is None:
        raise CnnzooError("nothing to evaluate: the data set is empty")
    return confusion.view(num_classes, num_classes)


def _iterator(run: Run, dataset, batch_size: int):
    from ..data import BatchIterator

    input_hw = tuple(run.config["input_size"][1:])
    resize = None if tuple(dataset.image_size[1:]) == input_hw else input_hw
    return BatchIterator(dataset, batch_size, shuffle=False, resize=resize,
                         normalize=run.config.get("normalize_stats"))


def as_run(run_dir) -> Run:
    """``run_dir`` as a ``Run``: one already read, or read from its folder (``load_run``)."""
    return run_dir if isinstance(run_dir, Run) else load_run(run_dir)


def evaluates_flipped(run: Run) -> bool:
    """Whether the run's recipe evaluates with flip test-time augmentation."""
    return bool(run.config.get("recipe", {}).get("eval_flip", False))


def _computes_as(run: Run, fp32: bool) -> tuple[bool, bool]:
    """(bf16 autocast, channels-last): how the run's model computed in its own evaluations,
    in float32 if told ``fp32``."""
    return (bool(run.config.get("amp", False)) and not fp32,
            bool(run.config.get("channels_last", False)))


@torch.inference_mode()
def run_logits(run: Run, x: torch.Tensor, *, fp32: bool = False) -> torch.Tensor:
    """The float32 logits of the run's model for ``x`` (preprocessed, see ``preprocess``),
    computed as in the run's own evaluations: its flip setting, bf16 autocast if it trained with
    ``amp=True`` (unless ``fp32``), channels-last if it trained so; on ``x``'s device."""
    amp, channels_last = _computes_as(run, fp32)
    layout = memory_format(channels_last)
    model = run.model.to(x.device, memory_format=layout)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        x = x.contiguous(memory_format=layout)
        return test_logits(model, x, evaluates_flipped(run)).float()


def preprocess(run: Run, images: torch.Tensor) -> torch.Tensor:
    """Images of the run's data set, uint8 (N, C, H, W), as its model sees them: float32
    (N, C, h, w) at the run's input size, normalised as in training, on the images' device."""
    from ..data import DataSet

    batch = DataSet(images=images,
                    labels=torch.zeros(len(images), dtype=torch.long, device=images.device),
                    classes=tuple(run.classes), name="images", source="tensor")
    x, _ = next(iter(_iterator(run, batch, len(images))))
    return x


def run_dataset(run: Run, split: str = "test", data_dir=None):
    """The whole ``split`` of the data set a run was trained on (a ``DataSet``), loaded as the
    run loaded it, from the run's data directory unless ``data_dir`` is given; its classes must
    be those of the run."""
    from ..data import load_dataset
    from ..data.catalog import IN_MEMORY, IN_MEMORY_ONLY

    if run.config["data"] == IN_MEMORY:
        raise CnnzooError(IN_MEMORY_ONLY)
    dataset = load_dataset(run.config["data"], split=split,
                           data_dir=data_dir or run.config.get("data_dir"),
                           **data_options(run.config))
    if list(dataset.classes) != list(run.classes):
        raise CnnzooError(f"the {run.config['data']} classes found differ from those the run "
                          f"was trained on; give the run's data with data_dir=")
    return dataset


EVAL_SPLITS = ("test", "train", "val")


def used_images(run: Run, split: str = "test", data_dir=None):
    """The images of ``split`` that the run used, as it drew them: the test set (or its
    ``test_subset``), the training images (less any validation hold-out, then its
    ``train_subset``), or ``"val"``, the validation hold-out."""
    from .prepare import VAL_SEED, validation_count

    if split not in EVAL_SPLITS:
        raise CnnzooError(f"split={split!r}: split must be one of {', '.join(EVAL_SPLITS)}")
    dataset = run_dataset(run, "test" if split == "test" else "train", data_dir)
    if split != "test":
        held = validation_count(run.config.get("val", 0), len(dataset))
        if not held and split == "val":
            raise CnnzooError(f"{run.path} held out no validation split (its val is 0)")
        if held:
            training, validation = dataset.split(held, seed=VAL_SEED)
            dataset = validation if split == "val" else training
    subset = run.config.get(f"{split}_subset")  # a run on a subset: the images it used
    if subset:
        dataset = dataset.subset(subset, seed=run.config["seed"])
    return dataset


def given_dataset(run: Run, data):
    """``data`` (a ``DataSet`` or ``(images, labels)``) as a ``DataSet`` of the run's classes
    and image channels; a one-line ``CnnzooError`` for data of another kind."""
    from ..data import DataSet

    if not isinstance(data, DataSet):
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise CnnzooError(f"data={type(data).__name__}: give a DataSet or (images, labels)")
        data = DataSet.from_tensors(*data, classes=run.classes)
    if list(data.classes) != list(run.classes):
        raise CnnzooError(f"data has {len(data.classes)} classes, the run "
                          f"{len(run.classes)} ({', '.join(run.classes[:5])}, ...)")
    if data.image_size[0] != run.config["image_size"][0]:
        raise CnnzooError(f"data's images have {data.image_size[0]} channels, the run's "
                          f"{run.config['image_size'][0]}")
    return data


def confusion_file(split: str, weights: str = "final") -> str:
    """The picture of a split's confusion matrix: each split its own, the test split's plain;
    ``-best`` for the best epoch's weights."""
    suffix = ("" if split == "test" else f"-{split}") + ("-best" if weights == "best" else "")
    return f"{CONFUSION[:-4]}{suffix}.png"


def evaluate(run_dir, *, split: str = "test", data_dir: str | None = None, data=None,
             device: str = "auto", batch_size: int | None = None, fp32: bool = False,
             plot: bool = True, progress=None) -> EvalResult:
    """Evaluate a run's model (a run directory, or a ``Run`` read from one) on its data set's
    ``split``, or on ``data`` (a ``DataSet``, or ``(images, labels)`` as tensors or arrays: a run
    trained on images given from Python keeps none); writes confusion.png (confusion-train.png for
    the training split) in the run directory unless told not. A picture that cannot be written (a
    run directory on a read-only medium) is a ``CnnzooWarning`` and ``plot`` None: the numbers are
    returned.

    The data set and preprocessing (resize, normalisation) are those recorded in the run (for
    a run on a subset of the split, the subset's images), and so is the batch size (the
    recipe's ``eval_batch_size``) unless ``batch_size`` is given.
    The model computes as it did in the run's own evaluations: under bf16 autocast if it
    trained with ``amp=True`` (unless ``fp32``), channels-last if it trained so; the accuracy is
    then the one the run recorded. ``progress(total)``, if given, is called once with the
    number of batches and returns what to call after each batch (a progress bar's update).
    """
    from . import allocator

    run = as_run(run_dir)
    if batch_size is not None and not (whole_number(batch_size) and batch_size >= 1):
        raise CnnzooError(f"batch_size={batch_size!r}: batch_size must be a whole number of at "
                          f"least 1")
    dev = pick_device(device)
    amp, channels_last = _computes_as(run, fp32)
    if batch_size is None:
        batch_size = run.config.get("recipe", {}).get("eval_batch_size", Recipe.eval_batch_size)
    if dev.type == "cpu":
        allocator.keep_freed_memory()  # reuse activation memory from batch to batch
    if data is not None:
        dataset = given_dataset(run, data)
    else:
        dataset = used_images(run, split, data_dir)
    model = run.model.to(dev, memory_format=memory_format(channels_last))
    batches = _iterator(run, dataset.to(dev), batch_size)
    confusion = evaluate_batches(model, batches, len(run.classes), amp=amp,
                                 channels_last=channels_last, flip=evaluates_flipped(run),
                                 on_batch=progress(len(batches)) if progress else None).cpu()
    totals = confusion.sum(dim=1).clamp_min(1)
    result = EvalResult(accuracy=confusion.diagonal().sum().item() / len(dataset),
                        per_class=(confusion.diagonal() / totals).tolist(),
                        confusion=confusion.tolist(), classes=list(run.classes),
                        num_examples=len(dataset), amp=amp, split=split)
    if plot:
        from ..plots import plot_confusion

        path = run.path / confusion_file(split, run.weights)
        try:
            plot_confusion(result.confusion, result.classes, path,
                           title=f"{run.config['model']}: {split} accuracy {result.accuracy:.4f}")
        except CnnzooError as error:  # a run on a read-only medium: the numbers still stand
            warnings.warn(f"{path.name} is not saved: {error}", CnnzooWarning, stacklevel=2)
        else:
            result.plot = path
    return result


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]]   # (class name, probability), most likely first


# Data sets whose images are light objects on a dark background (photos are usually the reverse)
DARK_BACKGROUND = ("fashion-mnist", "mnist")


def load_image(path, channels: int, size: tuple[int, int], dark_background: bool) -> torch.Tensor:
    """A PNG or JPEG file as a uint8 tensor (C, H, W) at the data set's own size and polarity.

    Grayscale or RGB as the data set is (16-bit grayscale scaled to 8 bits, as the folder data
    set reads it); resized with bilinear filtering; for data sets with a dark background
    (Fashion-MNIST, MNIST) an image whose border is mostly light is inverted, so a photo of a
    shoe on white paper looks like the training images.
    """
    from PIL import Image, UnidentifiedImageError

    from ..data.folder import FORMATS, eight_bit, upright

    try:
        # Only the PNG and JPEG readers may look at the file: others are needless attack
        # surface, and Pillow's EPS reader runs Ghostscript on what it is given. Pillow only
        # warns of an image between one and two times its pixel limit: refused here too.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as image:
                image = eight_bit(upright(image)).convert("L" if channels == 1 else "RGB")
                image = image.resize((size[1], size[0]), Image.BILINEAR)
    except FileNotFoundError as error:
        raise CnnzooError(f"{path}: no such file") from error
    except UnidentifiedImageError as error:
        raise CnnzooError(f"{path}: not a readable image (cnnzoo reads PNG and JPEG files)"
                          ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise CnnzooError(f"{path}: larger than Pillow's decompression-bomb limit "
                          f"({Image.MAX_IMAGE_PIXELS:,} pixels)") from error
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise CnnzooError(f"{path}: not a readable image ({error})") from error
    array = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    tensor = array.view(size[0], size[1], channels).permute(2, 0, 1).contiguous()
    if dark_background:
        border = torch.cat([tensor[:, 0], tensor[:, -1], tensor[:, :, 0], tensor[:, :, -1]], 1)
        if border.float().mean() > 127:
            tensor = 255 - tensor
    return tensor


def predict(run_dir, images: list, *, topk: int = 3, device: str = "auto") -> list[Prediction]:
    """Top-k classes with probabilities for image files (a list of paths), preprocessed as in
    training and computed as in the run's own evaluations (``run_logits``), in batches of the
    recipe's ``eval_batch_size`` as ``evaluate`` computes. ``run_dir`` is a run directory or
    a ``Run`` read from one (a run of a model of your own: ``load_run(folder, model=...)``)."""
    if not (whole_number(topk) and topk >= 1):
        raise CnnzooError(f"topk={topk!r}: topk must be a whole number of at least 1")
    if isinstance(images, (str, os.PathLike)) or not isinstance(images, (list, tuple)) or \
            not all(isinstance(path, (str, os.PathLike)) for path in images):
        raise CnnzooError(f"images={type(images).__name__}: give a list of image files' paths")
    if not images:
        raise CnnzooError("no images given to predict")
    run = as_run(run_dir)
    channels, height, width = run.config["image_size"]
    dark = run.config["data"] in DARK_BACKGROUND
    pixels = torch.stack([load_image(p, channels, (height, width), dark) for p in images])
    dev = pick_device(device)
    batch_size = run.config.get("recipe", {}).get("eval_batch_size", Recipe.eval_batch_size)
    # a folder of photos at once must not need every image's activations at once
    probabilities = torch.cat([run_logits(run, preprocess(run, batch.to(dev))).softmax(dim=1).cpu()
                               for batch in pixels.split(batch_size)])
    k = min(topk, len(run.classes))
    values, indices = probabilities.topk(k, dim=1)
    return [Prediction(str(path), [(run.classes[i], float(v)) for v, i in zip(vs, idx)])
            for path, vs, idx in zip(images, values.tolist(), indices.tolist())]
