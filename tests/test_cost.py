"""Convolution cost arithmetic: seed 002's 1x1-bottleneck example, checked against PyTorch's own
FLOP counter on real convolutions."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.inspect.cost import conv_cost


def test_seed_002_bottleneck_example():
    # Seed 002: 28x28x192 -> 28x28x32 with a 5x5 conv is 28*28*5*5*192*32 = 120 M multiplies;
    # through a 16-channel 1x1 first, 28*28*192*16 = 2.4 M plus 28*28*5*5*16*32 = 10 M.
    cost = conv_cost(28, 192, 32, 5, bottleneck=16)
    assert cost.direct.macs == 120_422_400
    assert [stage.macs for stage in cost.bottleneck.stages] == [2_408_448, 10_035_200]
    assert cost.bottleneck.macs == 12_443_648
    assert cost.direct.params == 5 * 5 * 192 * 32
    assert cost.bottleneck.params == 192 * 16 + 5 * 5 * 16 * 32


def _flop_counter_macs(*layers, size=28, channels=192):
    net = nn.Sequential(*layers)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = net(torch.rand(1, channels, size, size))
    assert out.shape[-2:] == (size, size)  # 'same' padding, as conv_cost assumes
    return counter.get_total_flops() // 2, sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("bias", [False, True])
def test_every_way_matches_real_convolutions(bias):
    cost = conv_cost(28, 192, 32, 5, bottleneck=16, depthwise=True, bias=bias)
    direct = _flop_counter_macs(nn.Conv2d(192, 32, 5, padding=2, bias=bias))
    squeezed = _flop_counter_macs(nn.Conv2d(192, 16, 1, bias=bias),
                                  nn.Conv2d(16, 32, 5, padding=2, bias=bias))
    separable = _flop_counter_macs(nn.Conv2d(192, 192, 5, padding=2, groups=192, bias=bias),
                                   nn.Conv2d(192, 32, 1, bias=bias))
    assert (cost.direct.macs, cost.direct.params) == direct
    assert (cost.bottleneck.macs, cost.bottleneck.params) == squeezed
    assert (cost.depthwise.macs, cost.depthwise.params) == separable


def test_only_the_ways_asked_for():
    cost = conv_cost(14, 64, 64, 3)
    assert cost.bottleneck is None and cost.depthwise is None
    assert [way.name for way in cost.ways] == ["direct 3x3 conv"]


@pytest.mark.parametrize("kwargs", [dict(size=0), dict(kernel=-1), dict(bottleneck=0),
                                    dict(in_channels=2.5)])
def test_bad_values_are_user_errors(kwargs):
    args = dict(size=28, in_channels=192, out_channels=32, kernel=5) | kwargs
    with pytest.raises(CnnzooError):
        conv_cost(**args)


def test_cost_command_prints_the_seed_numbers(capsys):
    assert main(["cost", "conv", "--size", "28", "--in", "192", "--out", "32", "--kernel", "5",
                 "--bottleneck", "16", "--depthwise"]) == 0
    out = capsys.readouterr().out
    for number in ("120,422,400", "12,443,648", "2,408,448", "10,035,200", "8,580,096"):
        assert number in out


def test_cost_command_bad_value_is_one_line(capsys):
    assert main(["cost", "conv", "--size", "0", "--in", "3", "--out", "8", "--kernel", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnzoo: error: size") and "\n" not in err
