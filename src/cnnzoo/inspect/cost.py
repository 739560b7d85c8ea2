"""What a convolution costs, three ways: directly, through a 1x1 bottleneck, depthwise separable.

The example of the Chinese notes on classic networks: a 5x5 convolution from 28x28x192 to 28x28x32
takes 28*28*5*5*192*32 = 120,422,400 multiply-accumulates; squeezing to 16 channels with a 1x1
convolution first takes 28*28*192*16 = 2,408,448 plus 28*28*5*5*16*32 = 10,035,200, 12,443,648 in
all, about a tenth (GoogLeNet's Inception trick). MobileNet's depthwise separable convolution
filters each input channel alone (k*k per channel) and then mixes channels with a 1x1.

Every way keeps the output the size of the input (stride 1, 'same' padding), as in the notes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CnnzooError


@dataclass(frozen=True)
class Stage:
    """One convolution: what it does, its multiply-accumulates and its parameters."""

    label: str
    macs: int
    params: int


@dataclass(frozen=True)
class Way:
    """One way to get from the input channels to the output channels: a chain of stages."""

    name: str
    stages: tuple[Stage, ...]

    @property
    def macs(self) -> int:
        return sum(stage.macs for stage in self.stages)

    @property
    def params(self) -> int:
        return sum(stage.params for stage in self.stages)


@dataclass(frozen=True)
class ConvCost:
    """The direct convolution and, where asked for, the bottleneck and depthwise separable ways
    to the same output."""

    size: int
    in_channels: int
    out_channels: int
    kernel: int
    direct: Way
    bottleneck: Way | None = None
    depthwise: Way | None = None

    @property
    def ways(self) -> list[Way]:
        return [way for way in (self.direct, self.bottleneck, self.depthwise) if way is not None]


def _stage(label: str, size: int, kernel: int, in_per_filter: int, filters: int,
           bias: bool) -> Stage:
    weights = kernel * kernel * in_per_filter * filters
    return Stage(label, size * size * weights, weights + (filters if bias else 0))


def conv_cost(size: int, in_channels: int, out_channels: int, kernel: int,
              bottleneck: int | None = None, depthwise: bool = False,
              bias: bool = False) -> ConvCost:
    """MACs and parameters of a ``kernel`` x ``kernel`` convolution on a ``size`` x ``size`` map
    from ``in_channels`` to ``out_channels``, against a 1x1 bottleneck to ``bottleneck``
    channels first and, with ``depthwise``, a depthwise separable convolution.

    MACs count one multiply-accumulate per weight per output position (biases add none);
    parameters count weights, plus biases with ``bias``. The output keeps the input's size.
    """
    for label, value in (("size", size), ("in_channels", in_channels),
                         ("out_channels", out_channels), ("kernel", kernel)):
        if not isinstance(value, int) or value < 1:
            raise CnnzooError(f"{label} must be a positive whole number, not {value!r}")
    if bottleneck is not None and (not isinstance(bottleneck, int) or bottleneck < 1):
        raise CnnzooError(f"bottleneck must be a positive whole number, not {bottleneck!r}")
    k = f"{kernel}x{kernel}"
    direct = Way(f"direct {k} conv", (
        _stage(f"{k} conv {in_channels} -> {out_channels}", size, kernel, in_channels,
               out_channels, bias),))
    squeezed = None
    if bottleneck is not None:
        squeezed = Way(f"1x1 bottleneck to {bottleneck}, then {k}", (
            _stage(f"1x1 conv {in_channels} -> {bottleneck}", size, 1, in_channels, bottleneck,
                   bias),
            _stage(f"{k} conv {bottleneck} -> {out_channels}", size, kernel, bottleneck,
                   out_channels, bias)))
    separable = None
    if depthwise:
        separable = Way(f"depthwise separable {k}", (
            _stage(f"{k} depthwise, {in_channels} channels", size, kernel, 1, in_channels,
                   bias),
            _stage(f"1x1 pointwise {in_channels} -> {out_channels}", size, 1, in_channels,
                   out_channels, bias)))
    return ConvCost(size, in_channels, out_channels, kernel, direct, squeezed, separable)
