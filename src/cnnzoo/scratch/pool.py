"""Max and average pooling by hand (section 5.4), with PyTorch's padding conventions."""

from __future__ import annotations

import torch

from ..errors import CnnzooError
from ._window import output_hw, pad, pair


def pool2d(X: torch.Tensor, pool_size, mode: str = "max", padding=0, stride=None) -> torch.Tensor:
    """Max or average pooling over the last two axes of X (5.4.1; padding and stride as in 5.4.2).

    X (..., H, W) gives Y (..., H', W') with H' = (H + 2ph - kh) // sh + 1 and W' alike; leading
    axes (channels, batch) are pooled one by one, so the number of channels is kept.
    ``pool_size`` (kh, kw), ``padding`` (ph, pw) and ``stride`` (sh, sw) may each be one int;
    ``stride`` defaults to ``pool_size`` and padding may be at most half the window, as in
    PyTorch. Padding follows ``F.max_pool2d`` and ``F.avg_pool2d`` with their defaults: max
    pooling pads with -inf, so padding is never the maximum; average pooling pads with zeros that
    count in the divisor (``count_include_pad=True``), so every window is divided by kh * kw.
    Where several elements share a window's maximum, the gradient goes to the first of them in
    row-major order, as in PyTorch. Integer inputs are pooled as float32.
    """
    if mode not in ("max", "avg"):
        raise CnnzooError(f"pool2d mode must be 'max' or 'avg'; got {mode!r}")
    if X.dim() < 2:
        raise CnnzooError(f"pool2d takes an (..., H, W) input; got shape {tuple(X.shape)}")
    kh, kw = pair(pool_size, "pool_size", 1)
    sh, sw = pair(pool_size if stride is None else stride, "stride", 1)
    ph, pw = pair(padding, "padding", 0)
    if 2 * ph > kh or 2 * pw > kw:
        raise CnnzooError(f"pool2d padding {(ph, pw)} is more than half the {kh}x{kw} window; "
                          "use less padding or a larger window")
    out_h, out_w = output_hw("pool2d", X.shape[-2:], (kh, kw), (ph, pw), (sh, sw))
    if not X.is_floating_point():
        X = X.float()  # an average of integers is not an integer, and -inf padding needs a float
    X = pad(X, (ph, pw), float("-inf") if mode == "max" else 0.0)
    Y = X.new_zeros((*X.shape[:-2], out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = X[..., i * sh:i * sh + kh, j * sw:j * sw + kw]
            if mode == "max":
                # max over the flattened window rather than amax: amax splits a tied maximum's
                # gradient between the tied elements, PyTorch gives it all to the first one
                Y[..., i, j] = window.flatten(-2).max(dim=-1).values
            else:
                Y[..., i, j] = window.mean(dim=(-2, -1))
    return Y
