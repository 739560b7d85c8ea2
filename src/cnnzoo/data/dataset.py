"""``DataSet``: a whole labelled image set as two tensors, kept as uint8 until a batch is drawn.

Holding the images as one uint8 tensor (a quarter of float32's size) lets the set live on the
device the model runs on; ``BatchIterator`` then draws batches by indexing, no copy per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import torch


@dataclass(eq=False)
class DataSet:
    """A labelled image set: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,) in 0..K-1.

    ``classes`` names the K classes in label order; ``name`` is the data set's name
    (``"fashion-mnist"``); ``source`` says where it came from (a directory, or a description).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str
    source: str
    _mean_std: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, init=False,
                                                                repr=False)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be a uint8 tensor (N, C, H, W), not "
                             f"{self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"labels must be an int64 tensor ({self.images.shape[0]},), not "
                             f"{self.labels.dtype} {tuple(self.labels.shape)}")
        if self.labels.device != self.images.device:
            raise ValueError("images and labels must be on one device")
        self.classes = tuple(self.classes)

    @classmethod
    def from_tensors(cls, images, labels, classes=None, name: str = "in-memory") -> DataSet:
        """A data set from images and labels given as tensors or NumPy arrays.

        ``images``: uint8 (N, C, H, W) or (N, H, W) (one channel), or floats in [0, 1] (as
        ``ToTensor`` makes them), scaled to uint8; ``labels``: whole numbers (N,) from 0.
        ``classes`` names the classes (default "0", "1", ...: as many as the largest label
        needs). A value of another form is one ``CnnzooError`` line naming it.
        """
        from ..errors import CnnzooError

        try:
            images = torch.as_tensor(images)
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError) as error:
            raise CnnzooError(f"images and labels must be tensors or arrays: {error}") from error
        if images.dim() == 3:
            images = images.unsqueeze(1)
        if images.dim() != 4:
            raise CnnzooError(f"images must be (N, C, H, W) or (N, H, W), not "
                              f"{tuple(images.shape)}")
        if images.is_floating_point():
            if images.numel() and not (0 <= float(images.min()) and float(images.max()) <= 1):
                raise CnnzooError("float images must lie in [0, 1] (as ToTensor makes them); "
                                  "give uint8 pixels otherwise")
            images = (images * 255).round().to(torch.uint8)
        elif images.dtype != torch.uint8:
            if images.numel() and not (0 <= int(images.min()) and int(images.max()) <= 255):
                raise CnnzooError(f"{images.dtype} images must hold pixels from 0 to 255")
            images = images.to(torch.uint8)
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise CnnzooError(f"labels must be whole numbers, not {labels.dtype}")
        labels = labels.reshape(-1).to(torch.int64)
        if len(labels) != len(images):
            raise CnnzooError(f"{len(images)} images but {len(labels)} labels")
        if len(labels) and int(labels.min()) < 0:
            raise CnnzooError("labels must be 0 or more (class indices)")
        count = int(labels.max()) + 1 if len(labels) else 0
        if classes is None:
            classes = tuple(str(index) for index in range(count))
        classes = tuple(str(c) for c in classes)
        if count > len(classes):
            raise CnnzooError(f"a label is {count - 1} but there are {len(classes)} classes")
        return cls(images.contiguous(), labels.to(images.device), classes, name,
                   f"{len(images)} images given from Python")

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        c, h, w = self.image_size
        return (f"DataSet({self.name!r}, {len(self)} images of {c}x{h}x{w}, "
                f"{self.num_classes} classes, device={self.device}, source={self.source!r})")

    @property
    def image_size(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> DataSet:
        """The same data set with both tensors moved to ``device`` (one copy each, still uint8)."""
        device = torch.device(device)
        if device == self.device:
            return self
        moved = replace(self, images=self.images.to(device), labels=self.labels.to(device))
        if self._mean_std is not None:
            moved._mean_std = tuple(t.to(device) for t in self._mean_std)
        return moved

    def class_counts(self) -> list[int]:
        """How many images each class has, in label order (length K)."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, n_or_indices: int | Sequence[int] | torch.Tensor, seed: int = 0) -> DataSet:
        """A smaller data set: ``n`` images drawn per class in proportion (stratified, seeded), or
        the images at the given indices, in that order.

        With an int, each class keeps its share of ``n`` (largest remainders get the leftovers),
        the chosen images are a seeded random draw, and they stay in their original order; an
        ``n`` of at least ``len(self)`` keeps every image.
        """
        if isinstance(n_or_indices, int):
            indices = self._stratified_indices(n_or_indices, seed)
            note = f"{n_or_indices} of {len(self)}, stratified, seed {seed}"
        else:
            indices = torch.as_tensor(n_or_indices, dtype=torch.int64).reshape(-1)
            if indices.numel() and not (-len(self) <= int(indices.min())
                                        and int(indices.max()) < len(self)):
                raise IndexError(f"subset indices must lie in 0..{len(self) - 1}")
            indices = indices % len(self)  # negative indices count from the end
            note = f"{indices.numel()} of {len(self)} by index"
        indices = indices.to(self.device)
        return DataSet(self.images.index_select(0, indices), self.labels.index_select(0, indices),
                       self.classes, self.name, f"{self.source} [subset: {note}]")

    def split(self, n: int, seed: int = 0) -> tuple[DataSet, DataSet]:
        """(the rest, ``n`` held out): a stratified, seeded hold-out of ``n`` images (each
        class keeps its share, as ``subset`` draws them) and the images it leaves, the two
        disjoint and together the whole set, each in the original order."""
        if not 1 <= n < len(self):
            raise ValueError(f"a hold-out needs 1 to {len(self) - 1} of the {len(self)} "
                             f"images, not {n}")
        held = self._stratified_indices(n, seed)
        keep = torch.ones(len(self), dtype=torch.bool)
        keep[held] = False
        rest = keep.nonzero().flatten()
        note = f"{n} of {len(self)} held out, stratified, seed {seed}"

        def part(indices, what):
            indices = indices.to(self.device)
            return DataSet(self.images.index_select(0, indices),
                           self.labels.index_select(0, indices), self.classes, self.name,
                           f"{self.source} [{what}: {note}]")

        return part(rest, "training part"), part(held, "validation part")

    def _stratified_indices(self, n: int, seed: int) -> torch.Tensor:
        if n < 1:
            raise ValueError(f"a subset needs at least one image, not {n}")
        if n >= len(self):
            return torch.arange(len(self))
        labels = self.labels.cpu()
        counts = torch.bincount(labels, minlength=self.num_classes)
        exact = counts.double() * n / len(self)
        quota = exact.floor().long()
        leftover = n - int(quota.sum())
        # Largest remainders first; a stable sort breaks ties by class index.
        order = torch.sort(exact - quota, descending=True, stable=True).indices
        quota[order[:leftover]] += 1
        generator = torch.Generator().manual_seed(seed)
        chosen = []
        for label in range(self.num_classes):
            members = (labels == label).nonzero().flatten()
            pick = torch.randperm(len(members), generator=generator)[: int(quota[label])]
            chosen.append(members[pick])
        return torch.cat(chosen).sort().values

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and standard deviation of the pixels scaled to [0, 1], two (C,).

        Computed once (exactly, in integer arithmetic, a chunk of images at a time so no float copy
        of the whole set is made) and kept; on the data set's device.
        """
        if self._mean_std is None:
            channels = self.images.shape[1]
            total = torch.zeros(channels, dtype=torch.int64, device=self.device)
            squares = torch.zeros(channels, dtype=torch.int64, device=self.device)
            chunk = max(1, (1 << 24) // max(1, self.images[0].numel()))
            for start in range(0, len(self), chunk):
                block = self.images[start:start + chunk].to(torch.int64)
                total += block.sum(dim=(0, 2, 3))
                squares += (block * block).sum(dim=(0, 2, 3))
            count = self.images.numel() // channels
            means, stds = [], []
            for s, q in zip(total.tolist(), squares.tolist()):
                mean = s / count
                means.append(mean / 255)
                stds.append(max(q / count - mean * mean, 0.0) ** 0.5 / 255)
            self._mean_std = (torch.tensor(means, dtype=torch.float32, device=self.device),
                              torch.tensor(stds, dtype=torch.float32, device=self.device))
        return self._mean_std
