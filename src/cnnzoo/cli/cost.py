"""``cnnzoo cost conv ...``: the multiply-accumulates and parameters of a convolution, directly,
through a 1x1 bottleneck and depthwise separable."""

from __future__ import annotations

from ._args import add_subcommands


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cost", help="cost arithmetic of a convolution",
        description="What a convolution costs in multiply-accumulates (MACs) and parameters.")
    kinds = add_subcommands(parser, "kind", "KIND")
    conv = kinds.add_parser(
        "conv", help="a k x k convolution on a square map",
        description="Cost of a KERNEL x KERNEL convolution (stride 1, 'same' padding) on a "
                    "SIZE x SIZE map from IN to OUT channels, against a 1x1 bottleneck first "
                    "(--bottleneck) and a depthwise separable convolution (--depthwise). "
                    "Example (Inception's trick, as the notes on classic networks work it): "
                    "--size 28 --in 192 --out 32 --kernel 5 --bottleneck 16.")
    conv.add_argument("--size", type=int, required=True, help="height = width of the map")
    conv.add_argument("--in", dest="in_channels", type=int, required=True,
                      help="input channels")
    conv.add_argument("--out", dest="out_channels", type=int, required=True,
                      help="output channels")
    conv.add_argument("--kernel", type=int, required=True, help="kernel size k (k x k)")
    conv.add_argument("--bottleneck", type=int, default=None,
                      help="channels of a 1x1 convolution run first")
    conv.add_argument("--depthwise", action="store_true",
                      help="also show the depthwise separable convolution")
    conv.add_argument("--bias", action="store_true", help="count biases among the parameters")
    conv.set_defaults(func=run)


def run(args) -> int:
    from ..inspect.cost import conv_cost

    cost = conv_cost(args.size, args.in_channels, args.out_channels, args.kernel,
                     bottleneck=args.bottleneck, depthwise=args.depthwise, bias=args.bias)
    print(f"{cost.size}x{cost.size}x{cost.in_channels} -> {cost.size}x{cost.size}x"
          f"{cost.out_channels}, kernel {cost.kernel}x{cost.kernel}, stride 1, same padding")
    lines = [("", "MACs", "parameters", "MACs vs direct")]
    for way in cost.ways:
        share = f"{way.macs / cost.direct.macs:.1%}"
        lines.append((way.name, f"{way.macs:,}", f"{way.params:,}", share))
        if len(way.stages) > 1:
            lines += [(f"  {stage.label}", f"{stage.macs:,}", f"{stage.params:,}", "")
                      for stage in way.stages]
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    for line in lines:
        print("  ".join([line[0].ljust(widths[0])] +
                        [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])]
                        ).rstrip())
    return 0
