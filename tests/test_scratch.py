"""The hand-written chapter-5 operators against PyTorch's, values and gradients alike.

Expected numbers come from PyTorch itself, from the book's printed outputs (Dive into Deep
Learning, chapter 5), from seed 003 (the 4x4 average-pool example) and from ANCHORS.md (the
BN-LeNet's parameter count and mult-adds).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnzoo.errors import CnnzooError, InputTooSmallError
from cnnzoo.scratch import (BatchNorm, Conv2D, batch_norm, corr2d, corr2d_1x1_as_matmul,
                            corr2d_multi_in, corr2d_multi_in_out, edge_example,
                            learn_edge_kernel, pool2d)

SWEEP = settings(max_examples=25, deadline=None)
DOUBLE = torch.float64  # tight tolerances: any difference left is a real one


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # the tensors here are tiny: a second thread only waits for a busy core (30x slower on 2 cores)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _random(generator, *shape, requires_grad=True):
    return torch.randn(*shape, generator=generator, dtype=DOUBLE).requires_grad_(requires_grad)


def _assert_same_and_same_grads(ours, theirs, inputs, generator):
    """Equal outputs, and equal gradients of <output, G> for one random G w.r.t. every input."""
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    upstream = torch.randn(ours.shape, generator=generator, dtype=ours.dtype)
    for mine, reference in zip(torch.autograd.grad(ours, inputs, upstream),
                               torch.autograd.grad(theirs, inputs, upstream)):
        torch.testing.assert_close(mine, reference, rtol=1e-10, atol=1e-10)


@st.composite
def windows(draw, max_kernel=4, pooling=False):
    """(H, W), kernel, padding, stride, seed: any window that fits the input."""
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    # PyTorch's pooling allows at most half the window of padding
    padding = tuple(draw(st.integers(0, k // 2 if pooling else 2)) for k in kernel)
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    hw = tuple(draw(st.integers(max(1, k - 2 * p), 9)) for k, p in zip(kernel, padding))
    return hw, kernel, padding, stride, draw(st.integers(0, 2**31 - 1))


# --- 5.1 cross-correlation ---------------------------------------------------------------------

def test_corr2d_book_example():
    X = torch.arange(9.0).reshape(3, 3)
    K = torch.arange(4.0).reshape(2, 2)
    assert corr2d(X, K).tolist() == [[19, 25], [37, 43]]  # printed in section 5.1.1


@SWEEP
@given(windows())
def test_corr2d_matches_conv2d(case):
    (height, width), kernel, padding, stride, seed = case
    generator = torch.Generator().manual_seed(seed)
    X, K = _random(generator, height, width), _random(generator, *kernel)
    ours = corr2d(X, K, padding=padding, stride=stride)
    theirs = F.conv2d(X[None, None], K[None, None], padding=padding, stride=stride)[0, 0]
    _assert_same_and_same_grads(ours, theirs, (X, K), generator)


def test_conv2d_module_matches_conv2d():
    generator = torch.Generator().manual_seed(0)
    layer = Conv2D((2, 3), padding=(1, 0), stride=(1, 2)).double()
    X = _random(generator, 5, 7)
    theirs = F.conv2d(X[None, None], layer.weight[None, None], layer.bias,
                      padding=(1, 0), stride=(1, 2))[0, 0]
    _assert_same_and_same_grads(layer(X), theirs, (X, layer.weight, layer.bias), generator)
    assert {name for name, _ in layer.named_parameters()} == {"weight", "bias"}
    assert layer.bias.shape == (1,)


def test_edge_detection():
    X, K = edge_example()
    expected = torch.zeros(6, 7)
    expected[:, 1], expected[:, 5] = 1, -1  # white-to-black edge, black-to-white edge
    assert X.shape == (6, 8) and X[:, 2:6].eq(0).all() and X[:, [0, 1, 6, 7]].eq(1).all()
    assert torch.equal(corr2d(X, K), expected)
    assert corr2d(X.t(), K).eq(0).all()  # a horizontal kernel sees no horizontal edges


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_learn_edge_kernel_recovers_one_minus_one(seed):
    state = torch.random.get_rng_state()
    kernel = learn_edge_kernel(seed=seed)
    assert kernel.shape == (1, 2)
    assert (kernel - torch.tensor([[1.0, -1.0]])).abs().max() < 0.05
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(learn_edge_kernel(seed=seed), kernel)


def test_learn_edge_kernel_needs_the_steps():
    # far from [1, -1] before training: the result above is learned, not the starting point
    assert (learn_edge_kernel(steps=0) - torch.tensor([[1.0, -1.0]])).abs().max() > 0.5


# --- 5.2 padding and stride --------------------------------------------------------------------

@pytest.mark.parametrize("kernel, padding, stride, shape", [
    ((3, 3), 1, 1, (8, 8)),             # the book's comp_conv2d examples on an 8x8 input
    ((5, 3), (2, 1), 1, (8, 8)),
    ((3, 3), 1, 2, (4, 4)),
    ((3, 5), (0, 1), (3, 4), (2, 2)),
])
def test_padding_and_stride_book_shapes(kernel, padding, stride, shape):
    X, K = torch.rand(8, 8), torch.rand(kernel)
    assert corr2d(X, K, padding=padding, stride=stride).shape == shape


# --- 5.3 channels and 1x1 ----------------------------------------------------------------------

def _book_channels():
    X = torch.stack([torch.arange(9.0).reshape(3, 3), torch.arange(1.0, 10.0).reshape(3, 3)])
    K = torch.stack([torch.arange(4.0).reshape(2, 2), torch.arange(1.0, 5.0).reshape(2, 2)])
    return X, K


def test_multi_channel_book_examples():
    X, K = _book_channels()
    assert corr2d_multi_in(X, K).tolist() == [[56, 72], [104, 120]]  # section 5.3.1
    assert corr2d_multi_in_out(X, torch.stack([K, K + 1, K + 2])).tolist() == [  # section 5.3.2
        [[56, 72], [104, 120]], [[76, 100], [148, 172]], [[96, 128], [192, 224]]]


@SWEEP
@given(windows(max_kernel=3), st.integers(1, 3), st.integers(1, 3))
def test_corr2d_multi_in_out_matches_conv2d(case, in_channels, out_channels):
    (height, width), kernel, padding, stride, seed = case
    generator = torch.Generator().manual_seed(seed)
    X = _random(generator, in_channels, height, width)
    K = _random(generator, out_channels, in_channels, *kernel)
    ours = corr2d_multi_in_out(X, K, padding=padding, stride=stride)
    theirs = F.conv2d(X[None], K, padding=padding, stride=stride)[0]
    _assert_same_and_same_grads(ours, theirs, (X, K), generator)
    single = corr2d_multi_in(X, K[0], padding=padding, stride=stride)
    torch.testing.assert_close(single, theirs[0], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("in_channels, out_channels, height, width", [(3, 2, 3, 3), (1, 4, 5, 2),
                                                                      (6, 1, 1, 7)])
def test_1x1_convolution_is_a_matrix_product(in_channels, out_channels, height, width):
    generator = torch.Generator().manual_seed(in_channels)
    X = _random(generator, in_channels, height, width)
    K = _random(generator, out_channels, in_channels, 1, 1)
    by_matmul = corr2d_1x1_as_matmul(X, K)
    _assert_same_and_same_grads(by_matmul, corr2d_multi_in_out(X, K), (X, K), generator)
    torch.testing.assert_close(by_matmul, F.conv2d(X[None], K)[0], rtol=1e-10, atol=1e-10)


def test_1x1_convolution_as_a_matrix_product_takes_mixed_dtypes_as_corr2d_does():
    X = torch.arange(12, dtype=torch.uint8).reshape(3, 2, 2)  # an image's bytes
    K = torch.rand(2, 3, 1, 1, dtype=DOUBLE)
    by_matmul = corr2d_1x1_as_matmul(X, K)
    assert by_matmul.dtype == DOUBLE
    torch.testing.assert_close(by_matmul, corr2d_multi_in_out(X, K), rtol=1e-10, atol=1e-10)


# --- 5.4 pooling -------------------------------------------------------------------------------

def test_average_pool_seed_003_worked_example():
    X = torch.arange(1.0, 17.0).reshape(4, 4)
    # seed 003 works out (1+2+5+6)/4 = 3.5 and so on; its "3 5 / 11 13" printout drops the .5
    assert pool2d(X, (2, 2), "avg", stride=2).tolist() == [[3.5, 5.5], [11.5, 13.5]]
    assert pool2d(X, 2, "avg").tolist() == [[3.5, 5.5], [11.5, 13.5]]  # stride defaults to 2


def test_pooling_book_examples():
    X = torch.tensor([[0.0, 1, 2], [3, 4, 5], [6, 7, 8]])
    assert pool2d(X, 2, stride=1).tolist() == [[4, 5], [7, 8]]  # section 5.4.1
    assert pool2d(X, 2, "avg", stride=1).tolist() == [[2, 3], [5, 6]]
    X = torch.arange(16.0).reshape(1, 1, 4, 4)  # section 5.4.2
    assert pool2d(X, 3).tolist() == [[[[10]]]]
    assert pool2d(X, 3, padding=1, stride=2).tolist() == [[[[5, 7], [13, 15]]]]
    assert pool2d(X, (2, 4), padding=(1, 2), stride=(2, 3)).tolist() == [
        [[[1, 3], [9, 11], [13, 15]]]]
    two_channels = torch.cat((X, X + 1), dim=1)
    assert pool2d(two_channels, 3, padding=1, stride=2).tolist() == [
        [[[5, 7], [13, 15]], [[6, 8], [14, 16]]]]


@SWEEP
@given(windows(pooling=True), st.sampled_from(["max", "avg"]))
def test_pool2d_matches_pytorch(case, mode):
    (height, width), kernel, padding, stride, seed = case
    generator = torch.Generator().manual_seed(seed)
    X = _random(generator, 2, 3, height, width)
    reference = F.max_pool2d if mode == "max" else F.avg_pool2d
    ours = pool2d(X, kernel, mode, padding=padding, stride=stride)
    _assert_same_and_same_grads(ours, reference(X, kernel, stride, padding), (X,), generator)


@SWEEP
@given(windows(pooling=True))
def test_max_pool_ties_send_the_gradient_where_pytorch_does(case):
    (height, width), kernel, padding, stride, seed = case
    generator = torch.Generator().manual_seed(seed)
    X = torch.randint(0, 3, (1, 2, height, width), generator=generator).to(DOUBLE)
    X.requires_grad_()
    ours = pool2d(X, kernel, padding=padding, stride=stride)
    _assert_same_and_same_grads(ours, F.max_pool2d(X, kernel, stride, padding), (X,), generator)


def test_average_pool_padding_counts_in_the_divisor():
    X = torch.arange(1.0, 17.0).reshape(1, 4, 4)
    ours = pool2d(X, 2, "avg", padding=1)
    torch.testing.assert_close(ours, F.avg_pool2d(X, 2, padding=1))  # count_include_pad=True
    assert ours[0, 0, 0] == 0.25  # 1 / 4: the three padded zeros count
    assert F.avg_pool2d(X, 2, padding=1, count_include_pad=False)[0, 0, 0] == 1.0


def test_pool2d_keeps_channels_and_pools_integers_as_float():
    Y = pool2d(torch.arange(16).reshape(2, 2, 2, 2), 2, "avg")
    assert Y.shape == (2, 2, 1, 1) and Y.dtype == torch.float32
    assert Y.flatten().tolist() == [1.5, 5.5, 9.5, 13.5]


# --- 5.10 batch normalisation ------------------------------------------------------------------

@st.composite
def batches(draw):
    ndim = draw(st.sampled_from([2, 4]))
    spatial = () if ndim == 2 else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 4)), *spatial)
    momentum, eps = draw(st.floats(0.0, 1.0)), draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    return shape, momentum, eps, draw(st.integers(0, 2**31 - 1))


@SWEEP
@given(batches(), st.booleans())
def test_batch_norm_matches_pytorch(case, training):
    shape, momentum, eps, seed = case
    if training and shape[0] * (shape[2] * shape[3] if len(shape) == 4 else 1) < 2:
        shape = (2, *shape[1:])  # training needs two values per channel, in PyTorch too
    generator = torch.Generator().manual_seed(seed)
    channels = shape[1]
    X = 3 + 2 * _random(generator, *shape)
    gamma, beta = _random(generator, channels), _random(generator, channels)
    running_mean = _random(generator, channels, requires_grad=False)
    running_var = torch.rand(channels, generator=generator, dtype=DOUBLE) + 0.5
    their_mean, their_var = running_mean.clone(), running_var.clone()
    ours, new_mean, new_var = batch_norm(X, gamma, beta, running_mean, running_var, eps,
                                         momentum, training)
    theirs = F.batch_norm(X, their_mean, their_var, gamma, beta, training, momentum, eps)
    _assert_same_and_same_grads(ours, theirs, (X, gamma, beta), generator)
    torch.testing.assert_close(new_mean, their_mean, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(new_var, their_var, rtol=1e-10, atol=1e-10)
    assert not new_mean.requires_grad and not new_var.requires_grad


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_batch_norm_half_precision_like_pytorchs(dtype):
    # statistics in float32, output in the input's dtype, running statistics in float32
    generator = torch.Generator().manual_seed(0)
    X = (300 + 50 * torch.randn(32, 4, 3, 3, generator=generator)).to(dtype)
    gamma, beta = torch.rand(4, generator=generator) + 0.5, torch.randn(4, generator=generator)
    ours, mean, var = batch_norm(X, gamma, beta, torch.zeros(4), torch.ones(4), training=True)
    their_mean, their_var = torch.zeros(4), torch.ones(4)
    theirs = F.batch_norm(X, their_mean, their_var, gamma, beta, training=True)
    assert ours.dtype == theirs.dtype == dtype and mean.dtype == var.dtype == torch.float32
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close((mean, var), (their_mean, their_var))


def test_batch_norm_running_statistics_by_hand():
    X = torch.tensor([[1.0], [3.0]])  # one channel: mean 2, biased variance 1, unbiased 2
    one, zero = torch.ones(1), torch.zeros(1)
    Y, mean, var = batch_norm(X, one, zero, zero, one, eps=0.0, momentum=0.1, training=True)
    assert Y.flatten().tolist() == [-1.0, 1.0]  # normalised with the biased variance
    torch.testing.assert_close(mean, torch.tensor([0.2]))  # 0.9 * 0 + 0.1 * 2
    torch.testing.assert_close(var, torch.tensor([1.1]))  # 0.9 * 1 + 0.1 * 2 (the book: 1.0)
    Y, same_mean, same_var = batch_norm(X, one, zero, mean, var, eps=0.0)  # prediction
    torch.testing.assert_close(Y, (X - 0.2) / 1.1 ** 0.5)
    assert same_mean is mean and same_var is var


@pytest.mark.parametrize("num_dims, shape, reference", [
    (2, (8, 5), nn.BatchNorm1d), (4, (4, 3, 5, 6), nn.BatchNorm2d)])
def test_batchnorm_module_is_a_drop_in_for_pytorchs(num_dims, shape, reference):
    torch.manual_seed(0)
    ours, theirs = BatchNorm(shape[1], num_dims=num_dims), reference(shape[1])
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-1, 1)
    ours.load_state_dict(theirs.state_dict())
    for _ in range(3):  # train mode: batch statistics, running statistics updated
        X = 1 + 3 * torch.randn(shape)
        torch.testing.assert_close(ours(X), theirs(X))
    for name, buffer in theirs.named_buffers():
        torch.testing.assert_close(getattr(ours, name), buffer)
    ours.eval()
    theirs.eval()
    X = torch.randn(shape)
    torch.testing.assert_close(ours(X), theirs(X))
    reference(shape[1]).load_state_dict(ours.state_dict())  # strict, both ways


def _bn_lenet(norm) -> nn.Sequential:
    """d2l's BN-LeNet with ``norm(num_features, num_dims)`` as its batch normalisation."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), norm(6, 4), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), norm(16, 4), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(256, 120), norm(120, 2), nn.Sigmoid(),
        nn.Linear(120, 84), norm(84, 2), nn.Sigmoid(),
        nn.Linear(84, 10))


def _torch_norm(num_features, num_dims):
    return nn.BatchNorm2d(num_features) if num_dims == 4 else nn.BatchNorm1d(num_features)


def test_bn_lenet_from_scratch_counts_as_the_anchor():
    model = _bn_lenet(BatchNorm)
    assert sum(p.numel() for p in model.parameters()) == 44_878  # ANCHORS.md, d2l BN-LeNet
    torchinfo = pytest.importorskip("torchinfo")
    stats = torchinfo.summary(model, input_size=(1, 1, 28, 28), verbose=0)
    assert (stats.total_params, stats.total_mult_adds) == (44_878, 286_786)  # ANCHORS.md


def test_bn_lenet_from_scratch_trains_like_pytorchs():
    torch.manual_seed(0)
    ours, theirs = _bn_lenet(BatchNorm), _bn_lenet(_torch_norm)
    theirs.load_state_dict(ours.state_dict())
    images, labels = torch.rand(64, 1, 28, 28), torch.arange(64) % 10
    optimizers = [torch.optim.SGD(model.parameters(), lr=1.0) for model in (ours, theirs)]
    losses = []
    for _ in range(6):  # the d2l recipe for this model: SGD, lr 1.0
        step_losses = []
        for model, optimizer in zip((ours, theirs), optimizers):
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step_losses.append(loss.item())
        assert step_losses[0] == pytest.approx(step_losses[1], rel=1e-4)
        losses.append(step_losses[0])
    assert losses[-1] < losses[0] - 0.1
    reference = theirs.state_dict()
    for name, mine in ours.state_dict().items():
        torch.testing.assert_close(mine, reference[name], rtol=1e-3, atol=1e-4, msg=name)
    ours.eval()
    theirs.eval()
    torch.testing.assert_close(ours(images), theirs(images), rtol=1e-3, atol=1e-4)


# --- mistakes are reported in one line ---------------------------------------------------------

@pytest.mark.parametrize("call, error", [
    (lambda: corr2d(torch.ones(3, 3, 1), torch.ones(2, 2)), CnnzooError),
    (lambda: corr2d(torch.ones(3, 3), torch.ones(4, 2)), InputTooSmallError),
    (lambda: corr2d(torch.ones(3, 3), torch.ones(2, 2), stride=0), CnnzooError),
    (lambda: corr2d(torch.ones(3, 3), torch.ones(2, 2), padding=(1, 2, 3)), CnnzooError),
    (lambda: corr2d_multi_in(torch.ones(2, 3, 3), torch.ones(3, 2, 2)), CnnzooError),
    (lambda: corr2d_multi_in(torch.ones(0, 3, 3), torch.ones(0, 2, 2)), CnnzooError),
    (lambda: corr2d_multi_in_out(torch.ones(2, 3, 3), torch.ones(0, 2, 2, 2)), CnnzooError),
    (lambda: corr2d_1x1_as_matmul(torch.ones(2, 3, 3), torch.ones(4, 2, 3, 3)), CnnzooError),
    (lambda: pool2d(torch.ones(4, 4), 2, mode="median"), CnnzooError),
    (lambda: pool2d(torch.ones(4, 4), 2, padding=2), CnnzooError),
    (lambda: pool2d(torch.ones(1, 1), 2), InputTooSmallError),
    (lambda: BatchNorm(3, num_dims=3), CnnzooError),
    (lambda: BatchNorm(3, num_dims=2, momentum=None), CnnzooError),
    (lambda: BatchNorm(3, num_dims=4, momentum=1.5), CnnzooError),
    (lambda: BatchNorm(3, num_dims=4)(torch.ones(2, 3)), CnnzooError),
    (lambda: BatchNorm(3, num_dims=2)(torch.ones(1, 3)), CnnzooError),
    (lambda: batch_norm(torch.ones(2, 3, 4), *[torch.ones(3)] * 4), CnnzooError),
    (lambda: batch_norm(torch.ones(2, 3), *[torch.ones(3)] * 4, eps=-1e-3), CnnzooError),
    (lambda: BatchNorm(3, num_dims=2, eps=-0.5).eval()(torch.ones(2, 3)), CnnzooError),
])
def test_mistakes_raise_one_line_errors(call, error):
    with pytest.raises(error) as info:
        call()
    assert "\n" not in str(info.value)


# --- the walkthrough ---------------------------------------------------------------------------

def test_walkthrough_prints_every_step(capsys):
    from cnnzoo.scratch.__main__ import main

    assert main([]) == 0
    out = capsys.readouterr().out
    for heading in ("5.1.1", "5.1.3", "5.1.4", "5.1.6", "5.2", "5.3", "5.4", "5.10"):
        assert f"== {heading} " in out
    assert "3.5  5.5\n    11.5 13.5" in out
    assert "docs/inspect.md" in out


@pytest.mark.parametrize("argv", [["--bogus"], ["5.4"]])
def test_walkthrough_refuses_arguments_in_one_line(capsys, argv):
    from cnnzoo.scratch.__main__ import main

    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.startswith("cnnzoo: error: ") and printed.err.count("\n") == 1


def test_walkthrough_help_is_help(capsys):
    from cnnzoo.scratch.__main__ import main

    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m cnnzoo.scratch") and "== 5.1.1" not in out


def test_walkthrough_into_a_closed_pipe_ends_quietly():
    # `python -m cnnzoo.scratch | head -1`, as `cnnzoo models | head -1`
    child = subprocess.Popen([sys.executable, "-m", "cnnzoo.scratch"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 141, err
    assert err == ""
