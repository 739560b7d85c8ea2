"""The tiled average pool's backward pass gives PyTorch's gradients, and only tiling pools get it."""

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.models.lenet import Subsampling
from cnnzoo.training.pooling import TiledAvgPool2d, tiles, use_tiled_pooling
from cnnzoo.training.step import TrainStep


def _grads(pool: nn.Module, x: torch.Tensor, grad: torch.Tensor):
    x = x.detach().clone().requires_grad_()
    out = pool(x)
    out.backward(grad)
    return out, x.grad


@pytest.mark.parametrize("kernel, size", [(2, (28, 28)), (2, (5, 7)), (3, (10, 9)),
                                          ((2, 3), (8, 9)), ((3, 1), (7, 4))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_same_output_and_gradient_as_avg_pool2d(kernel, size, dtype, layout):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, *size, generator=generator).to(dtype).contiguous(memory_format=layout)
    plain = nn.AvgPool2d(kernel)
    tiled = nn.AvgPool2d(kernel)
    assert use_tiled_pooling(tiled) == 1 and type(tiled) is TiledAvgPool2d
    grad = torch.randn(plain(x).shape, generator=generator).to(dtype)
    out_plain, grad_plain = _grads(plain, x, grad)
    out_tiled, grad_tiled = _grads(tiled, x, grad)
    assert torch.equal(out_tiled, out_plain)
    assert grad_tiled.shape == x.shape and grad_tiled.dtype == dtype
    # in the input's layout, though the output's gradient is contiguous (as from a flatten):
    # otherwise the convolution before a channels-last pool copies it back (x.grad above is
    # put in x's layout whatever the backward returns; autograd.grad gives what it returned)
    x = x.detach().requires_grad_()
    passed_on, = torch.autograd.grad(tiled(x), x, grad)
    assert passed_on.is_contiguous(memory_format=layout)
    tolerance = dict(rtol=0, atol=0) if kernel == 2 else {}  # / 4 is exact in any float
    torch.testing.assert_close(grad_tiled, grad_plain, **tolerance)


def test_only_pools_whose_windows_tile_the_input():
    assert tiles(nn.AvgPool2d(2, stride=2)) and tiles(nn.AvgPool2d(3))
    assert not tiles(nn.AvgPool2d(3, stride=2))           # overlapping windows
    assert not tiles(nn.AvgPool2d(2, padding=1))
    assert not tiles(nn.AvgPool2d(2, ceil_mode=True))
    assert not tiles(nn.AvgPool2d(2, divisor_override=3))
    assert not tiles(nn.MaxPool2d(2))
    assert not tiles(Subsampling(6, 2))                    # LeNet-5's trainable subsampling


def test_models_keep_their_weights_and_outputs():
    for name, pools in (("lenet5_d2l", 2), ("lenet5_bn_d2l", 2), ("alexnet_d2l", 0)):
        torch.manual_seed(0)
        net = cnnzoo.get_model(name).eval()
        x = torch.randn(2, 1, *cnnzoo.model_info(name).input_size[-2:])
        before, state = net(x), {k: v.clone() for k, v in net.state_dict().items()}
        assert use_tiled_pooling(net) == pools
        assert all(isinstance(m, nn.AvgPool2d) for m in net.modules()
                   if isinstance(m, TiledAvgPool2d))
        assert torch.equal(net(x), before)
        assert state.keys() == net.state_dict().keys()
        assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())


def test_the_cpu_step_uses_it_and_trains_as_plain_autograd():
    def trained(tiled: bool):
        torch.manual_seed(0)
        net = cnnzoo.get_model("lenet5_d2l")
        optimizer = torch.optim.SGD(net.parameters(), lr=0.9)
        x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
        if tiled:
            step = TrainStep(net, net, optimizer, nn.CrossEntropyLoss(), batch_size=16,
                             device=torch.device("cpu"))
            assert sum(type(m) is TiledAvgPool2d for m in net.modules()) == 2
            for _ in range(3):
                step(x, y)
        else:
            for _ in range(3):
                optimizer.zero_grad()
                nn.functional.cross_entropy(net(x), y).backward()
                optimizer.step()
        return net.state_dict()

    plain, tiled = trained(False), trained(True)
    for key, value in plain.items():
        torch.testing.assert_close(tiled[key], value, rtol=1e-5, atol=1e-6)


def test_compiles():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(3 * 4 * 4, 2))
    x = torch.randn(4, 1, 8, 8)
    net(x).sum().backward()
    want = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    use_tiled_pooling(net)
    torch.compile(net)(x).sum().backward()
    for got, expected in zip((p.grad for p in net.parameters()), want):
        torch.testing.assert_close(got, expected)
