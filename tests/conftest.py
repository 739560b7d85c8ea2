"""Fixtures shared by several test modules."""

import pytest
import torch

from cnnzoo.training import train


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module: two threads on a shared two-core machine are slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_tiny_run(folder):
    """A one-epoch lenet5_d2l run on synthetic data in ``folder``: a real run directory."""
    train("lenet5_d2l", data="synthetic", epochs=1, out=folder, device="cpu", train_subset=256,
          test_subset=64)
    return folder
