"""``BatchIterator``: batches drawn from a ``DataSet`` by index, transformed as whole-batch ops.

Nothing here works per sample: a batch is ``images[indices]`` (uint8, where the data set lives),
converted to float32 in [0, 1], then resized, cropped, flipped, normalised and erased as batched
operations on that device; no worker processes. All randomness of an epoch (the order and every
augmentation) is drawn up front from a CPU generator seeded by (seed, epoch), so batch i of epoch e
is a pure function of (seed, e, i) on any device, and a resumed run sees the batches an
uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import parse_size
from .dataset import DataSet

ERASE_SCALE = (0.02, 0.33)  # area fraction of the erased rectangle (Zhong et al. 2017)
ERASE_RATIO = (0.3, 3.3)  # its aspect ratio, drawn log-uniformly


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation, applied per batch at the output size.

    ``crop_padding``: pad each side by this many zero pixels and take a random crop of the
    original size (0: off). ``flip``: mirror left-right with probability 1/2. ``erasing``: the
    probability of zeroing one random rectangle (random erasing, Zhong et al. 2017), applied after
    normalisation so the erased area holds the mean pixel when normalising.
    """

    crop_padding: int = 0
    flip: bool = False
    erasing: float = 0.0

    def __post_init__(self):
        if not (isinstance(self.crop_padding, int) and self.crop_padding >= 0):
            raise ValueError(f"crop_padding must be an int >= 0, not {self.crop_padding!r}")
        if not 0.0 <= self.erasing <= 1.0:
            raise ValueError(f"erasing must be a probability in [0, 1], not {self.erasing!r}")


@dataclass(frozen=True)
class _EpochPlan:
    order: torch.Tensor  # (N,) int64: which image each position of the epoch holds
    crop: torch.Tensor | None  # (N, 2) int64 offsets in 0..2*padding
    flip: torch.Tensor | None  # (N,) bool
    erase: torch.Tensor | None  # (N, 5) float32 uniforms: apply, scale, ratio, top, left


class BatchIterator:
    """Iterates over ``dataset`` in batches ``(x, y)``: x float32 (B, C, H, W), y int64 (B,).

    x is in [0, 1], resized to ``resize`` (an int for square, or (H, W); bilinear through
    ``torch.nn.functional.interpolate``, antialiased when shrinking), augmented by ``augment``,
    then normalised with ``normalize`` = (mean, std) per channel or ``"dataset"`` for the data
    set's own statistics. Both tensors are on the data set's device. ``shuffle`` draws a new order
    per epoch; call ``set_epoch(e)`` before each epoch, as iterating twice without it repeats the
    same batches. ``len()`` is the number of batches.
    """

    def __init__(self, dataset: DataSet, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 resize: int | Sequence[int] | None = None,
                 normalize: tuple[Sequence[float], Sequence[float]] | str | None = None,
                 augment: Augment | None = None, drop_last: bool = False):
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        if not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"seed must be a non-negative int, not {seed!r}")
        if augment is not None and not isinstance(augment, Augment):
            raise TypeError(f"augment must be an Augment, not {type(augment).__name__}")
        if drop_last and len(dataset) < batch_size:
            raise ValueError(f"drop_last with {len(dataset)} images and batch_size {batch_size} "
                             "leaves no batch")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.augment = augment or Augment()
        self.epoch = 0
        self.output_size = _output_size(resize, dataset.image_size[1:])
        self._mean_std = _normalization(normalize, dataset)

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.dataset) // self.batch_size
        return math.ceil(len(self.dataset) / self.batch_size)

    @property
    def image_size(self) -> tuple[int, int, int]:
        """(C, H, W) of the images in the batches."""
        return (self.dataset.image_size[0], *self.output_size)

    @property
    def samples_per_epoch(self) -> int:
        return len(self) * self.batch_size if self.drop_last else len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch``: its order and augmentations depend on it."""
        if not (isinstance(epoch, int) and epoch >= 0):
            raise ValueError(f"epoch must be a non-negative int, not {epoch!r}")
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        plan = self._plan()
        images, labels = self.dataset.images, self.dataset.labels
        for start in range(0, self.samples_per_epoch, self.batch_size):
            rows = plan.order[start:start + self.batch_size]
            # index_select, not images[rows]: advanced indexing takes a general path on the CPU,
            # many times slower.
            x = resized(images.index_select(0, rows).to(torch.float32).div_(255),
                        self.output_size)
            if plan.crop is not None:
                x = random_crop(x, self.augment.crop_padding, plan.crop[start:start + len(rows)])
            if plan.flip is not None:
                x = torch.where(plan.flip[start:start + len(rows), None, None, None], x.flip(3), x)
            if self._mean_std is not None:
                mean, std = self._mean_std
                x = x.sub_(mean).div_(std)
            if plan.erase is not None:
                x = random_erase(x, self.augment.erasing, plan.erase[start:start + len(rows)])
            yield x, labels.index_select(0, rows)

    def _plan(self) -> _EpochPlan:
        count, device = len(self.dataset), self.dataset.device
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        # The order is drawn first, so switching augmentations on or off keeps it.
        order = torch.randperm(count, generator=generator) if self.shuffle else torch.arange(count)
        augment = self.augment
        crop = flip = erase = None
        if augment.crop_padding:
            crop = torch.randint(0, 2 * augment.crop_padding + 1, (count, 2), generator=generator)
        if augment.flip:
            flip = torch.rand(count, generator=generator) < 0.5
        if augment.erasing:
            erase = torch.rand(count, 5, generator=generator)
        return _EpochPlan(*(t if t is None else t.to(device) for t in (order, crop, flip, erase)))


def random_crop(x: torch.Tensor, padding: int, offsets: torch.Tensor) -> torch.Tensor:
    """Crop each image of x (B, C, H, W), zero-padded by ``padding`` per side, back to (H, W) at
    its own (top, left) offset from ``offsets`` (B, 2), each in 0..2*padding: (B, C, H, W)."""
    batch, channels, height, width = x.shape
    padded_width = width + 2 * padding
    padded = F.pad(x, (padding, padding, padding, padding)).flatten(2)
    # One gather over the flattened padded plane: quicker on the CPU than indexing rows and
    # columns, and free of host syncs on a GPU.
    rows = offsets[:, 0, None, None] + torch.arange(height, device=x.device)[:, None]
    cols = offsets[:, 1, None, None] + torch.arange(width, device=x.device)
    index = (rows * padded_width + cols).reshape(batch, 1, height * width)
    return padded.gather(2, index.expand(batch, channels, -1)).view(batch, channels, height,
                                                                      width)


def random_erase(x: torch.Tensor, probability: float, uniforms: torch.Tensor) -> torch.Tensor:
    """Zero one rectangle in each image of x (B, C, H, W) with the given probability.

    ``uniforms`` (B, 5) in [0, 1) decide, per image: whether to erase, the area fraction (in
    ERASE_SCALE), the log aspect ratio (in ERASE_RATIO), and the top and left position. A
    rectangle too tall or wide for the image is clipped to it. Returns a new (B, C, H, W) tensor.
    """
    _, _, height, width = x.shape
    apply, scale, ratio, top, left = uniforms.unbind(1)
    area = height * width * (ERASE_SCALE[0] + (ERASE_SCALE[1] - ERASE_SCALE[0]) * scale)
    low, high = math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])
    aspect = torch.exp(low + (high - low) * ratio)
    box_h = torch.sqrt(area * aspect).round().clamp(1, height)
    box_w = torch.sqrt(area / aspect).round().clamp(1, width)
    top = torch.floor(top * (height - box_h + 1))
    left = torch.floor(left * (width - box_w + 1))
    r = torch.arange(height, device=x.device)
    c = torch.arange(width, device=x.device)
    in_rows = (r >= top[:, None]) & (r < (top + box_h)[:, None])  # (B, H)
    in_cols = (c >= left[:, None]) & (c < (left + box_w)[:, None])  # (B, W)
    mask = in_rows[:, :, None] & in_cols[:, None, :] & (apply < probability)[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


def _epoch_seed(seed: int, epoch: int) -> int:
    state = np.random.SeedSequence([seed, epoch]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


def resized(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Images ``x`` (N, C, H, W), float, at ``size`` (H, W): bilinear, antialiased when
    shrinking; ``x`` itself at its own size."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    shrinking = size[0] < x.shape[2] or size[1] < x.shape[3]
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False,
                         antialias=shrinking)


def _output_size(resize, native: tuple[int, int]) -> tuple[int, int]:
    if resize is None:
        return tuple(native)
    return parse_size(resize, (2,), name="resize", square=True)


def _normalization(normalize, dataset: DataSet):
    if normalize is None:
        return None
    channels = dataset.image_size[0]
    if isinstance(normalize, str):
        if normalize != "dataset":
            raise ValueError(f"normalize must be (mean, std) or 'dataset', not {normalize!r}")
        mean, std = dataset.mean_std()
    else:
        mean, std = (torch.as_tensor(v, dtype=torch.float32, device=dataset.device).reshape(-1)
                     for v in normalize)
    for name, values in (("mean", mean), ("std", std)):
        if values.numel() not in (1, channels):
            raise ValueError(f"normalize {name} has {values.numel()} values for {channels} "
                             "channel(s)")
    if bool((std <= 0).any()):
        raise ValueError(f"normalize std must be positive, not {std.tolist()}")
    return mean.reshape(1, -1, 1, 1), std.reshape(1, -1, 1, 1)
