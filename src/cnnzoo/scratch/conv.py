"""Cross-correlation by hand: one and many channels, 1x1, padding and stride (sections 5.1-5.3).

The loops visit one output position at a time and multiply a slice of the input by the kernel,
exactly as the book draws it. That is slow, and meant to be read; ``F.conv2d`` computes the same
numbers (tests/test_scratch.py checks values and gradients against it).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CnnzooError
from ._window import check_ndim, output_hw, pad, pair


def corr2d(X: torch.Tensor, K: torch.Tensor, padding=0, stride=1) -> torch.Tensor:
    """2-D cross-correlation of one input with one kernel (5.1.1; padding and stride as in 5.2).

    X (H, W) and K (kh, kw) give Y (H', W'), H' = (H + 2ph - kh) // sh + 1 and W' alike, where
    ``Y[i, j] = (X[i*sh : i*sh + kh, j*sw : j*sw + kw] * K).sum()`` on X framed by ph rows of zeros
    above and below and pw columns of zeros left and right. ``padding`` (ph, pw) and ``stride``
    (sh, sw) may each be one int for both axes. Autograd follows the slices, so gradients reach
    both X and K.
    """
    check_ndim("corr2d", 2, X=X, K=K)
    kernel, stride = pair(tuple(K.shape), "kernel shape", 1), pair(stride, "stride", 1)
    padding = pair(padding, "padding", 0)
    out_h, out_w = output_hw("corr2d", X.shape, kernel, padding, stride)
    (kh, kw), (sh, sw) = kernel, stride
    X = pad(X, padding)
    Y = X.new_zeros((out_h, out_w), dtype=torch.result_type(X, K))
    for i in range(out_h):
        for j in range(out_w):
            Y[i, j] = (X[i * sh:i * sh + kh, j * sw:j * sw + kw] * K).sum()
    return Y


def corr2d_multi_in(X: torch.Tensor, K: torch.Tensor, padding=0, stride=1) -> torch.Tensor:
    """Cross-correlation of a multi-channel input with a kernel of as many channels (5.3.1).

    X (C, H, W) and K (C, kh, kw) give Y (H', W'): one ``corr2d`` per channel, summed over the
    channels. ``padding`` and ``stride`` are as in ``corr2d``.
    """
    check_ndim("corr2d_multi_in", 3, X=X, K=K)
    if X.shape[0] != K.shape[0]:
        raise CnnzooError(f"corr2d_multi_in: X has {X.shape[0]} channels but K has {K.shape[0]}; "
                          "give the kernel one (kh, kw) slice per input channel")
    return sum(corr2d(x, k, padding, stride) for x, k in zip(X, K))


def corr2d_multi_in_out(X: torch.Tensor, K: torch.Tensor, padding=0, stride=1) -> torch.Tensor:
    """Cross-correlation with several output channels (5.3.2), what ``F.conv2d`` does per sample.

    X (C, H, W) and K (Co, C, kh, kw) give Y (Co, H', W'): output channel o is
    ``corr2d_multi_in(X, K[o])``. ``padding`` and ``stride`` are as in ``corr2d``.
    """
    check_ndim("corr2d_multi_in_out", 4, K=K)
    return torch.stack([corr2d_multi_in(X, k, padding, stride) for k in K])


def corr2d_1x1_as_matmul(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution computed as one matrix product over the channels (5.3.3).

    X (C, H, W) and K (Co, C, 1, 1) give Y (Co, H, W) equal to ``corr2d_multi_in_out(X, K)``:
    each of the H * W positions is a sample whose C channel values are its features, and the
    kernel is the (Co, C) weight matrix of a fully connected layer applied to every sample.
    """
    check_ndim("corr2d_1x1_as_matmul", 3, X=X)
    check_ndim("corr2d_1x1_as_matmul", 4, K=K)
    if tuple(K.shape[2:]) != (1, 1) or K.shape[1] != X.shape[0]:
        raise CnnzooError(f"corr2d_1x1_as_matmul needs K of shape (Co, {X.shape[0]}, 1, 1); "
                          f"got {tuple(K.shape)}")
    channels, height, width = X.shape
    dtype = torch.result_type(X, K)  # as corr2d's products: a matrix product takes one dtype
    Y = K.reshape(K.shape[0], channels).to(dtype) @ X.reshape(channels, height * width).to(dtype)
    return Y.reshape(K.shape[0], height, width)


class Conv2D(nn.Module):
    """A convolution layer built on ``corr2d``: a learnable kernel and scalar bias (5.1.2).

    Input (H, W) -> output (H', W') as in ``corr2d`` with this layer's ``padding`` and
    ``stride``. The kernel (``weight``, shape ``kernel_size``) and the bias (``bias``, shape (1,))
    start as standard normal draws, as in the book.
    """

    def __init__(self, kernel_size, padding=0, stride=1):
        super().__init__()
        self.padding = pair(padding, "padding", 0)
        self.stride = pair(stride, "stride", 1)
        self.weight = nn.Parameter(torch.randn(pair(kernel_size, "kernel_size", 1)))
        self.bias = nn.Parameter(torch.randn(1))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return corr2d(X, self.weight, self.padding, self.stride) + self.bias

    def extra_repr(self) -> str:
        return (f"kernel_size={tuple(self.weight.shape)}, padding={self.padding}, "
                f"stride={self.stride}")


def edge_example() -> tuple[torch.Tensor, torch.Tensor]:
    """The image and kernel of the edge-detection example (5.1.3).

    Returns X (6, 8), ones with columns 2 to 5 set to zero (a black stripe on white), and
    K (1, 2) = [[1, -1]]. ``corr2d(X, K)`` (6, 7) is 1 on the white-to-black edge, -1 on the
    black-to-white edge and 0 elsewhere.
    """
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    return X, torch.tensor([[1.0, -1.0]])


def learn_edge_kernel(steps: int = 40, lr: float = 0.01, seed: int = 0) -> torch.Tensor:
    """Learn the edge kernel back from the edge example's input and output (5.1.4).

    A ``Conv2D`` with a (1, 2) kernel, initialised from ``seed``, takes ``steps`` plain
    gradient-descent steps of size ``lr`` on the summed squared error between its output on the
    example's X and ``corr2d(X, [[1, -1]])``. Returns the learned kernel (1, 2), close to
    [[1, -1]]. The book stops after 20 steps, where some starting points are still well off;
    the default of 40 brings them close (docs/scratch.md, "Learning the kernel"). The global
    random state is left as it was.
    """
    X, K = edge_example()
    Y = corr2d(X, K)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        conv = Conv2D(kernel_size=(1, 2))
    for _ in range(steps):
        loss = ((conv(X) - Y) ** 2).sum()
        conv.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for parameter in conv.parameters():
                parameter -= lr * parameter.grad
    return conv.weight.detach().clone()
