"""The convolution chapter's operators written out by hand (Dive into Deep Learning, chapter 5).

Each operator here is a few lines of plain tensor code that a reader can follow, and each agrees
with its PyTorch counterpart to rounding error, values and gradients alike (tests/test_scratch.py):

- ``conv``: 2-D cross-correlation with padding and stride, its multi-channel forms, the 1x1
  convolution as a matrix product, a ``Conv2D`` layer and learning an edge kernel from data;
- ``pool``: max and average pooling;
- ``norm``: batch normalisation for fully connected and convolutional inputs, with the running
  statistics used for prediction; ``BatchNorm`` can stand in for ``nn.BatchNorm1d/2d`` in a model.

``python -m cnnzoo.scratch`` walks through the chapter and prints each step.
"""

from __future__ import annotations

from .conv import (Conv2D, corr2d, corr2d_1x1_as_matmul, corr2d_multi_in, corr2d_multi_in_out,
                   edge_example, learn_edge_kernel)
from .norm import BatchNorm, batch_norm
from .pool import pool2d

__all__ = ["BatchNorm", "Conv2D", "batch_norm", "corr2d", "corr2d_1x1_as_matmul",
           "corr2d_multi_in", "corr2d_multi_in_out", "edge_example", "learn_edge_kernel",
           "pool2d"]
