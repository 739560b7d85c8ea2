"""``python -m cnnzoo.scratch``: the convolution chapter step by step, on the hand-made operators.

Each step prints what the book shows and, next to it, how far PyTorch's own operator is from the
hand-written one. The page docs/scratch.md reads alongside. The command takes no arguments but
``--help``; any other is refused in one line, as ``cnnzoo``'s mistakes are, and output into a
closed pipe ends quietly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..cli import Parser, one_line, run
from . import (BatchNorm, batch_norm, corr2d, corr2d_1x1_as_matmul, corr2d_multi_in,
               corr2d_multi_in_out, edge_example, learn_edge_kernel, pool2d)


def _rows(tensor: torch.Tensor, indent: str = "    ") -> str:
    """A 2-D (or squeezable) tensor as aligned rows of short numbers."""
    tensor = tensor.detach()
    while tensor.dim() > 2:
        tensor = tensor[0] if tensor.shape[0] == 1 else tensor.flatten(0, 1)
    rows = tensor.reshape(-1, tensor.shape[-1]).tolist()
    cells = [[f"{value:g}" for value in row] for row in rows]
    width = max(len(cell) for row in cells for cell in row)
    return "\n".join(indent + " ".join(cell.rjust(width) for cell in row) for row in cells)


def _gap(ours: torch.Tensor, theirs: torch.Tensor) -> str:
    return f"max |ours - PyTorch's| = {(ours - theirs).abs().max().item():.1e}"


def _title(text: str) -> None:
    print(f"\n== {text} ==")


def cross_correlation() -> None:
    _title("5.1.1 cross-correlation")
    X = torch.arange(9.0).reshape(3, 3)
    K = torch.arange(4.0).reshape(2, 2)
    Y = corr2d(X, K)
    print(f"X (3x3) = 0..8, K (2x2) = 0..3, corr2d(X, K) =\n{_rows(Y)}")
    print(_gap(Y, F.conv2d(X[None, None], K[None, None])[0, 0]))


def edges() -> None:
    _title("5.1.3 edge detection")
    X, K = edge_example()
    print(f"X (6x8), a black stripe in columns 2..5:\n{_rows(X)}")
    print(f"corr2d(X, [[1, -1]]): 1 where white turns black, -1 where black turns white\n"
          f"{_rows(corr2d(X, K))}")
    print(f"on X transposed the horizontal kernel finds nothing: "
          f"all zero = {bool((corr2d(X.t(), K) == 0).all())}")


def learning_the_kernel() -> None:
    _title("5.1.4 learning the kernel from data")
    for steps in (10, 20, 40):
        kernel = learn_edge_kernel(steps=steps)
        print(f"{steps:3d} steps of gradient descent, lr 0.01: kernel = "
              f"[{kernel[0, 0].item():.4f}, {kernel[0, 1].item():.4f}]   (true: [1, -1])")


def receptive_field() -> None:
    _title("5.1.6 receptive field")
    X = torch.rand(3, 3, requires_grad=True)
    K = torch.ones(2, 2)
    Y = corr2d(X, K)
    Z = corr2d(Y, K)
    (field,) = torch.autograd.grad(Z[0, 0], X)
    print("two 2x2 correlations: X (3x3) -> Y (2x2) -> Z (1x1). The inputs a value depends on")
    print(f"are those with a non-zero gradient; for Z[0, 0] (counts of paths):\n{_rows(field)}")
    print("all nine: Z's receptive field is 3x3, Y's is 2x2; each stride-1 layer adds k - 1.")
    print("`cnnzoo summary` prints the receptive field of every layer of a model "
          "(docs/inspect.md).")


def padding_and_stride() -> None:
    _title("5.2 padding and stride")
    X = torch.rand(8, 8)
    cases = [((3, 3), 1, 1), ((5, 3), (2, 1), 1), ((3, 3), 1, 2), ((3, 5), (0, 1), (3, 4))]
    for kernel, padding, stride in cases:
        K = torch.rand(kernel)
        ours = corr2d(X, K, padding=padding, stride=stride)
        theirs = F.conv2d(X[None, None], K[None, None], padding=padding, stride=stride)[0, 0]
        print(f"8x8 input, kernel {kernel[0]}x{kernel[1]}, padding {padding}, stride {stride}: "
              f"{tuple(ours.shape)}; {_gap(ours, theirs)}")


def channels() -> None:
    _title("5.3 multiple input and output channels, 1x1 convolution")
    X = torch.stack([torch.arange(9.0).reshape(3, 3), torch.arange(1.0, 10.0).reshape(3, 3)])
    K = torch.stack([torch.arange(4.0).reshape(2, 2), torch.arange(1.0, 5.0).reshape(2, 2)])
    print(f"two input channels, summed:\n{_rows(corr2d_multi_in(X, K))}")
    K3 = torch.stack([K, K + 1, K + 2])
    Y = corr2d_multi_in_out(X, K3)
    print(f"three output channels, shape {tuple(Y.shape)}; {_gap(Y, F.conv2d(X[None], K3)[0])}")
    X = torch.rand(3, 3, 3)
    K = torch.rand(2, 3, 1, 1)
    by_matmul = corr2d_1x1_as_matmul(X, K)
    print("1x1 kernel (2, 3, 1, 1) on a (3, 3, 3) input as one (2x3) @ (3x9) matrix product:")
    print(f"  max |matmul - corr2d_multi_in_out| = "
          f"{(by_matmul - corr2d_multi_in_out(X, K)).abs().max().item():.1e}")


def pooling() -> None:
    _title("5.4 pooling")
    X = torch.arange(9.0).reshape(3, 3)
    print(f"X = 0..8 (3x3), 2x2 max:\n{_rows(pool2d(X, 2, stride=1))}")
    print(f"2x2 average:\n{_rows(pool2d(X, 2, 'avg', stride=1))}")
    X = torch.arange(1.0, 17.0).reshape(4, 4)
    Y = pool2d(X, 2, "avg")
    print(f"X = 1..16 (4x4), 2x2 average with stride 2 (the LeNet pooling):\n{_rows(Y)}")
    print(_gap(Y, F.avg_pool2d(X[None], 2)[0]))
    X = torch.arange(16.0).reshape(1, 4, 4)
    for size, padding, stride in [(3, 0, None), (3, 1, 2), ((2, 4), (1, 2), (2, 3))]:
        Y = pool2d(X, size, padding=padding, stride=stride)
        theirs = F.max_pool2d(X, size, padding=padding, stride=stride)
        print(f"X = 0..15, max {size}, padding {padding}, stride {stride or size}: "
              f"{Y[0].int().tolist()}; {_gap(Y, theirs)}")
    X = torch.arange(1.0, 17.0).reshape(4, 4)
    corner = pool2d(X, 2, "avg", padding=1)[0, 0].item()
    print("padded average pooling divides by the whole window, padding included (PyTorch's")
    print(f"default count_include_pad=True): top-left of 1..16, 2x2, padding 1: 1/4 = {corner:g}")


def batch_normalisation() -> None:
    _title("5.10 batch normalisation")
    generator = torch.Generator().manual_seed(0)
    X = 3 + 2 * torch.randn(16, 3, 5, 5, generator=generator)
    layer, reference = BatchNorm(3, num_dims=4), torch.nn.BatchNorm2d(3)

    def per_channel(values: torch.Tensor) -> list[float]:
        return [round(value, 4) + 0.0 for value in values.tolist()]  # + 0.0: no "-0.0"

    Y = layer(X)
    print("train mode, a batch (16, 3, 5, 5) with mean about 3 and std about 2:")
    print(f"  output mean per channel {per_channel(Y.mean((0, 2, 3)))}, "
          f"std {per_channel(Y.std((0, 2, 3), unbiased=False))}")
    print(f"  {_gap(Y, reference(X))}")
    print(f"  running mean, 0.9 * 0 + 0.1 * batch mean: {per_channel(layer.running_mean)}")
    print(f"  running var, 0.9 * 1 + 0.1 * unbiased batch var: {per_channel(layer.running_var)}")
    print(f"  {_gap(layer.running_var, reference.running_var)}")
    layer.eval()
    reference.eval()
    Y = layer(X)
    print("eval mode, the same batch through the running statistics (one batch old):")
    print(f"  output mean per channel {per_channel(Y.mean((0, 2, 3)))}")
    print(f"  {_gap(Y, reference(X))}")
    fc = torch.randn(8, 4, generator=generator)
    ones, zeros = torch.ones(4), torch.zeros(4)
    Y, _, running_var = batch_norm(fc, ones, zeros, zeros, ones, training=True)
    their_var = ones.clone()
    theirs = F.batch_norm(fc, zeros.clone(), their_var, ones, zeros, training=True)
    print("a fully connected batch (8, 4) through batch_norm, training:")
    print(f"  output, {_gap(Y, theirs)}")
    print(f"  running var, {_gap(running_var, their_var)}")


class _Parser(Parser):
    """``cnnzoo``'s one-line argument errors for a program that is not a ``cnnzoo`` command."""

    def error(self, message: str):
        self.exit(2, f"cnnzoo: error: {one_line(message)} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    _Parser(prog="python -m cnnzoo.scratch",
            description="The operators of Dive into Deep Learning, chapter 5 (cross-correlation, "
                        "padding and stride, channels, pooling, batch normalisation), written "
                        "by hand and run step by step next to PyTorch's. Takes no arguments; "
                        "docs/scratch.md reads alongside.").parse_args(argv)
    print("cnnzoo: the operators of Dive into Deep Learning, chapter 5, written by hand")
    torch.manual_seed(0)  # the same random inputs on every run
    for step in (cross_correlation, edges, learning_the_kernel, receptive_field,
                 padding_and_stride, channels, pooling, batch_normalisation):
        step()
    return 0


if __name__ == "__main__":
    run(main)
