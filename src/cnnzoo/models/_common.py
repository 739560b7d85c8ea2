"""Small pieces shared by the family modules."""

from __future__ import annotations

from ..errors import CnnzooError


def resolve_input_size(in_channels: int | None, input_size, default: tuple[int, int, int]
                       ) -> tuple[int, int, int]:
    """The (C, H, W) a fixed-head model is built for.

    ``input_size`` may be None (the default), an int (square), ``(H, W)`` or ``(C, H, W)``;
    ``in_channels``, when given, sets C and must agree with a C given in ``input_size``.
    """
    channels, height, width = default
    if input_size is not None:
        size = (input_size,) * 2 if isinstance(input_size, int) else tuple(input_size)
        if len(size) == 3:
            if in_channels is not None and in_channels != size[0]:
                raise CnnzooError(f"in_channels={in_channels} disagrees with "
                                  f"input_size={tuple(input_size)}")
            channels, size = size[0], size[1:]
        if len(size) != 2 or min(size) < 1:
            raise CnnzooError(f"input_size must be an int, (H, W) or (C, H, W); got {input_size!r}")
        height, width = size
    if in_channels is not None:
        channels = in_channels
    return int(channels), int(height), int(width)
