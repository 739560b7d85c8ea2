"""Batch normalisation from scratch (section 5.10), with PyTorch's running-statistics arithmetic.

The book's version and PyTorch's normalise a training batch identically; they differ in how the
running statistics used for prediction are kept. Here they are kept exactly as
``F.batch_norm`` keeps them, so ``BatchNorm`` can replace ``nn.BatchNorm1d/2d`` in a model, state
dict included, and give the same numbers in training and in prediction.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CnnzooError


def batch_norm(X: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
               moving_mean: torch.Tensor, moving_var: torch.Tensor, eps: float = 1e-5,
               momentum: float = 0.1, training: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch-normalise a fully connected batch X (N, C) or a convolutional batch X (N, C, H, W).

    ``gamma``, ``beta``, ``moving_mean`` and ``moving_var`` have shape (C,). Returns
    ``(Y, moving_mean, moving_var)``: Y has X's shape, ``gamma * (X - mean) / sqrt(var + eps) +
    beta`` per channel. In training the mean and the biased variance (divided by n) are those of
    the batch, over the n = N (or N * H * W) values of each channel, and the returned running
    statistics are new tensors ``(1 - momentum) * running + momentum * batch``, where the batch
    variance is the unbiased one (divided by n - 1), as ``F.batch_norm`` does. In prediction
    (``training=False``, the default, as in ``F.batch_norm``) the running statistics normalise X
    and come back unchanged. The book writes the same average the other way round (its momentum
    0.9 weights the old value: ``0.9 * running + 0.1 * batch``) and moves the running variance
    toward the biased batch variance, so its running variance settles about (n - 1) / n of
    PyTorch's. Half-precision inputs (as under autocast) are normalised in float32 and the
    output cast back, as PyTorch does.
    """
    if X.dim() not in (2, 4):
        raise CnnzooError(f"batch_norm takes an (N, C) or (N, C, H, W) input; "
                          f"got shape {tuple(X.shape)}")
    if not eps >= 0:  # as F.batch_norm: a negative eps gives NaN, or a wrong scale, silently
        raise CnnzooError(f"batch_norm eps must be 0 or more (it is added to the variance); "
                          f"got {eps}")
    dtype = X.dtype
    if dtype in (torch.float16, torch.bfloat16):
        X = X.float()  # as PyTorch's kernel: statistics in float32, output in the input's dtype
    axes = (0,) if X.dim() == 2 else (0, 2, 3)  # every axis but the channels
    shape = (1, -1) + (1,) * (X.dim() - 2)  # (C,) broadcast against X
    if training:
        count = X.numel() // X.shape[1]
        if count < 2:
            raise CnnzooError(f"batch_norm in training needs more than one value per channel; "
                              f"got shape {tuple(X.shape)}: use a larger batch or training=False")
        mean = X.mean(dim=axes)
        var = ((X - mean.reshape(shape)) ** 2).mean(dim=axes)
        with torch.no_grad():
            moving_mean = (1 - momentum) * moving_mean + momentum * mean
            moving_var = (1 - momentum) * moving_var + momentum * var * count / (count - 1)
    else:
        mean, var = moving_mean, moving_var
    X_hat = (X - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
    Y = gamma.reshape(shape) * X_hat + beta.reshape(shape)
    return Y.to(dtype), moving_mean, moving_var


class BatchNorm(nn.Module):
    """Batch normalisation layer built on ``batch_norm``, a drop-in for ``nn.BatchNorm1d/2d``.

    ``num_dims`` 2 takes fully connected batches (N, num_features) like ``nn.BatchNorm1d``; 4
    takes convolutional batches (N, num_features, H, W) like ``nn.BatchNorm2d``; the output has
    the input's shape. Learnable ``weight`` (gamma, ones) and ``bias`` (beta, zeros) and the
    buffers ``running_mean`` (zeros) and ``running_var`` (ones), all of shape (num_features,),
    carry PyTorch's names, so state dicts load both ways. In train mode the layer normalises with
    the batch statistics and updates the running ones as ``F.batch_norm`` does (momentum 0.1
    weighting the new batch, unbiased batch variance); in eval mode it normalises with the
    running statistics.
    """

    def __init__(self, num_features: int, num_dims: int, eps: float = 1e-5,
                 momentum: float = 0.1):
        super().__init__()
        if num_dims not in (2, 4):
            raise CnnzooError(f"BatchNorm num_dims must be 2 (fully connected) or 4 "
                              f"(convolutional); got {num_dims}")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) \
                or not 0 <= momentum <= 1:
            # nn.BatchNorm's momentum=None (a cumulative average) included: not kept here
            raise CnnzooError(f"BatchNorm momentum must be a number from 0 to 1, the weight of "
                              f"each new batch in the running statistics; got {momentum!r}")
        self.num_features, self.num_dims = num_features, num_dims
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        # unused here (momentum is never None), kept so state dicts match nn.BatchNorm's exactly
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if X.dim() != self.num_dims or X.shape[1] != self.num_features:
            expected = "(N, C)" if self.num_dims == 2 else "(N, C, H, W)"
            raise CnnzooError(f"BatchNorm({self.num_features}, num_dims={self.num_dims}) takes "
                              f"{expected} with C={self.num_features}; got {tuple(X.shape)}")
        Y, running_mean, running_var = batch_norm(
            X, self.weight, self.bias, self.running_mean, self.running_var,
            self.eps, self.momentum, self.training)
        if self.training:
            with torch.no_grad():
                self.running_mean.copy_(running_mean)
                self.running_var.copy_(running_var)
                self.num_batches_tracked += 1
        return Y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, num_dims={self.num_dims}, eps={self.eps}, "
                f"momentum={self.momentum}")
