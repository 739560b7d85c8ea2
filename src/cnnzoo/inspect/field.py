"""Receptive field arithmetic: how much of the input one position of a feature map sees.

A feature map carries two numbers per axis: its receptive field ``r`` (input pixels one output
position depends on) and its jump ``j`` (input pixels between neighbouring output positions). A
window of kernel ``k``, stride ``s`` and dilation ``d`` maps them to ``r + (k - 1) * d * j`` and
``j * s``; padding changes neither. Where paths meet (Inception's concatenation, a residual
addition) the result sees as far as the widest of them, so fields merge by taking the maximum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    """Receptive field and jump of a feature map, as (height, width) pairs in input pixels."""

    size: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)

    def after_window(self, kernel, stride, dilation=(1, 1)) -> Field:
        """The field after a convolution or pooling window (each argument an (h, w) pair)."""
        size = tuple(r + (k - 1) * d * j
                     for r, k, d, j in zip(self.size, kernel, dilation, self.jump))
        jump = tuple(j * s for j, s in zip(self.jump, stride))
        return Field(size, jump)

    def covering(self, hw) -> Field:
        """The field of a position that sees a whole ``hw`` map at once (global pooling, or a
        flatten feeding a linear layer): a window as large as the map."""
        return self.after_window(hw, hw)

    @staticmethod
    def widest(fields) -> Field:
        """The field where several paths meet: the largest field and jump of any of them."""
        fields = list(fields)
        size = tuple(max(f.size[axis] for f in fields) for axis in (0, 1))
        jump = tuple(max(f.jump[axis] for f in fields) for axis in (0, 1))
        return Field(size, jump)


def adaptive_window(in_size: int, out_size: int) -> tuple[int, int]:
    """(kernel, stride) of an adaptive pool along one axis: its widest window and its longer
    step between windows, both exact when ``out_size`` divides ``in_size``.

    Window ``i`` spans ``floor(i * in / out)`` to ``ceil((i + 1) * in / out)``: ``ceil((r + in) /
    out)`` positions, where ``r = i * in mod out`` reaches ``out - gcd(in, out)``. Uneven windows
    (5 -> 3: 2, 3, 2) are one wider than ``ceil(in / out)``, and the steps alternate between
    ``floor`` and ``ceil(in / out)``; the longer step keeps later fields an upper bound.
    """
    if out_size <= 1:
        return in_size, in_size
    kernel = -(-(in_size - math.gcd(in_size, out_size)) // out_size) + 1
    return kernel, -(-in_size // out_size)


def format_pair(pair) -> str:
    """``7`` for a square (7, 7), ``1x7`` otherwise; ``--`` for None."""
    if pair is None:
        return "--"
    height, width = pair
    return f"{height}" if height == width else f"{height}x{width}"
