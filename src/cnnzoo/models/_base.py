"""What the family modules share: the features/head base classes and the input size a
fixed-head model is built for."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CnnzooError
from ..geometry import parse_size


def resolve_input_size(in_channels: int | None, input_size, default: tuple[int, int, int]
                       ) -> tuple[int, int, int]:
    """The (C, H, W) a fixed-head model is built for.

    ``input_size`` may be None (the default), an int (square), ``(H, W)`` or ``(C, H, W)``;
    ``in_channels``, when given, sets C and must agree with a C given in ``input_size``.
    """
    channels, height, width = default
    if input_size is not None:
        size = parse_size(input_size, (2, 3), square=True)
        if len(size) == 3:
            if in_channels is not None and in_channels != size[0]:
                raise CnnzooError(f"in_channels={in_channels} disagrees with "
                                  f"input_size={tuple(input_size)}")
            channels, size = size[0], size[1:]
        height, width = size
    if in_channels is not None:
        channels = in_channels
    return int(channels), int(height), int(width)


class FeaturesHead(nn.Module):
    """A classifier in two parts, as timm splits every model: ``forward_features`` maps
    (N, C, H, W) to the trunk's last feature map, ``forward_head`` maps that to
    (N, num_classes), and ``forward`` is the one after the other.

    By default the trunk is the module ``features`` and the head the module ``classifier``; a
    family whose parts are other modules overrides either method.
    """

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class GlobalPoolNet(FeaturesHead):
    """A net whose head is global average pooling and one linear layer: subclasses build
    ``features`` (the trunk), ``avgpool``, ``flatten`` and ``fc``."""

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.avgpool(x)))
