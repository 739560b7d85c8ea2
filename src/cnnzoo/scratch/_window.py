"""Window arithmetic shared by the hand-written convolution and pooling (section 5.2)."""

from __future__ import annotations

import torch

from ..errors import CnnzooError, InputTooSmallError
from ..geometry import conv_output_size


def pair(value, name: str, minimum: int) -> tuple[int, int]:
    """``(h, w)`` from an int or an (h, w) pair, each at least ``minimum``."""
    if isinstance(value, int):
        values = (value, value)
    else:
        values = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(values) != 2 or not all(isinstance(v, int) and v >= minimum for v in values):
        raise CnnzooError(f"{name} must be an int or an (h, w) pair of ints >= {minimum}; "
                          f"got {value!r}")
    return values


def check_ndim(op: str, ndim: int, **tensors: torch.Tensor) -> None:
    """Raise a one-line error naming the first of ``tensors`` that is not ``ndim``-dimensional
    or is empty (no channels, say: a sum over none of them would be the number 0, not a map)."""
    for name, tensor in tensors.items():
        if tensor.dim() != ndim or tensor.numel() == 0:
            raise CnnzooError(f"{op} takes a non-empty {ndim}-D {name}; "
                              f"got shape {tuple(tensor.shape)}")


def output_hw(op: str, hw, kernel: tuple[int, int], padding: tuple[int, int],
              stride: tuple[int, int]) -> tuple[int, int]:
    """Output (H', W') of a window sliding over an (H, W) input: ``(H + 2ph - kh) // sh + 1``."""
    out = tuple(conv_output_size(size, k, s, p)
                for size, k, s, p in zip(tuple(hw), kernel, stride, padding))
    if min(out) < 1:
        raise InputTooSmallError(
            f"{op}: a {kernel[0]}x{kernel[1]} window with padding {padding} does not fit a "
            f"{hw[0]}x{hw[1]} input; use a smaller window or more padding")
    return out


def pad(X: torch.Tensor, padding: tuple[int, int], value: float = 0.0) -> torch.Tensor:
    """X (..., H, W) framed by ph rows above and below and pw columns left and right of ``value``:
    (..., H + 2ph, W + 2pw)."""
    ph, pw = padding
    if ph == pw == 0:
        return X
    height, width = X.shape[-2:]
    padded = X.new_full((*X.shape[:-2], height + 2 * ph, width + 2 * pw), value)
    padded[..., ph:ph + height, pw:pw + width] = X
    return padded
