"""Small pieces shared by the family modules."""

from __future__ import annotations

import numbers

import torch
from torch import nn

from ..errors import CnnzooError


def whole_number(value) -> bool:
    """Whether ``value`` is an int (numpy's included), not a bool, a float or a string."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def resolve_input_size(in_channels: int | None, input_size, default: tuple[int, int, int]
                       ) -> tuple[int, int, int]:
    """The (C, H, W) a fixed-head model is built for.

    ``input_size`` may be None (the default), an int (square), ``(H, W)`` or ``(C, H, W)``;
    ``in_channels``, when given, sets C and must agree with a C given in ``input_size``.
    """
    channels, height, width = default
    if input_size is not None:
        size = ((input_size,) * 2 if whole_number(input_size)
                else tuple(input_size) if isinstance(input_size, (tuple, list)) else ())
        if len(size) not in (2, 3) or not all(whole_number(v) and v >= 1 for v in size):
            raise CnnzooError(f"input_size must be an int, (H, W) or (C, H, W) of whole numbers "
                              f"of at least 1; got {input_size!r}")
        if len(size) == 3:
            if in_channels is not None and in_channels != size[0]:
                raise CnnzooError(f"in_channels={in_channels} disagrees with "
                                  f"input_size={tuple(input_size)}")
            channels, size = size[0], size[1:]
        height, width = size
    if in_channels is not None:
        channels = in_channels
    return int(channels), int(height), int(width)


class GlobalPoolNet(nn.Module):
    """A net whose head is global average pooling and one linear layer.

    Subclasses build ``features`` (the trunk), ``avgpool``, ``flatten`` and ``fc``; this class
    gives them ``forward_features`` ((N, C, H, W) -> the trunk's map), ``forward_head`` (that
    map -> (N, num_classes)) and ``forward``.
    """

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.avgpool(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
