"""A faster backward pass for average pooling whose windows tile the input, used when training
on the CPU.

When the kernel equals the stride and there is no padding (LeNet's and DenseNet's 2x2 pools),
each input pixel lies in exactly one window, so the gradient of the pooling is the output's
gradient divided by the window's size and repeated over its window: a nearest-neighbour
upsampling. That gives the same numbers as PyTorch's own ``avg_pool2d_backward``, which on
the CPU takes markedly longer for such pools, enough to show in a LeNet's whole training step
(measured: BENCHMARKS.md, the pooling's backward). Only the module's class changes; its
settings, state and forward pass stay those of ``nn.AvgPool2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair


class _TiledAvgPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
        ctx.kernel, ctx.size = kernel, x.shape[-2:]
        ctx.layout = (torch.channels_last if x.dim() == 4 and not x.is_contiguous()
                      and x.is_contiguous(memory_format=torch.channels_last)
                      else torch.contiguous_format)
        return F.avg_pool2d(x, kernel)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (kh, kw), (h, w) = ctx.kernel, ctx.size
        # the gradient in the input's layout: one reaching a channels-last pool from a flatten
        # is contiguous, and upsampled as it is would cost the convolution behind a copy
        grad = grad.contiguous(memory_format=ctx.layout)
        grad_in = F.interpolate(grad / (kh * kw), scale_factor=(kh, kw), mode="nearest")
        if grad_in.shape[-2:] != (h, w):  # rows and columns past the last window: no gradient
            grad_in = F.pad(grad_in, (0, w - grad_in.shape[-1], 0, h - grad_in.shape[-2]))
        return grad_in, None


class TiledAvgPool2d(nn.AvgPool2d):
    """``nn.AvgPool2d`` with kernel == stride and no padding, with the upsampling backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _TiledAvgPool.apply(x, _pair(self.kernel_size))


def tiles(module: nn.Module) -> bool:
    """Whether ``module`` is a plain ``nn.AvgPool2d`` whose windows tile its input."""
    return (type(module) is nn.AvgPool2d and _pair(module.kernel_size) == _pair(module.stride)
            and _pair(module.padding) == (0, 0) and not module.ceil_mode
            and module.divisor_override is None)


def use_plain_pooling(net: nn.Module) -> None:
    """Undo ``use_tiled_pooling``: every ``TiledAvgPool2d`` of ``net`` is an ``nn.AvgPool2d``
    again (a user's module is handed back with the classes it came with)."""
    for module in net.modules():
        if type(module) is TiledAvgPool2d:
            module.__class__ = nn.AvgPool2d


def use_tiled_pooling(net: nn.Module) -> int:
    """Give every tiling average pool of ``net`` the upsampling backward, in place; returns
    how many it changed."""
    changed = 0
    for module in net.modules():
        if tiles(module):
            module.__class__ = TiledAvgPool2d
            changed += 1
    return changed
