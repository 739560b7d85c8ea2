"""``cnnzoo shapes NAME``: every layer's output shape, in the order the layers run."""

from __future__ import annotations

from ._args import add_input_size, parse_input_size, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "shapes", help="print every layer's output shape",
        description="Run one random input through a model and print each layer's output shape "
                    "in call order, blocks indented, with kernel, stride and padding of "
                    "convolution and pooling layers. A model with a fixed-size head is built "
                    "for the size asked; an input too small for the model says which layer "
                    "fails and the smallest input that works.")
    parser.add_argument("name", help="a registered model (see `cnnzoo models`)")
    add_input_size(parser)
    parser.add_argument("--batch", type=positive_int, default=1, help="batch size (default 1)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..inspect.shapes import build_for_input, trace_shapes
    from ..models import model_info

    size = parse_input_size(args.input_size) or model_info(args.name).default_input_size()
    trace = trace_shapes(build_for_input(args.name, size), size, batch=args.batch)
    trace.name = args.name
    print(trace)
    return 0
