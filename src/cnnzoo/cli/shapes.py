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


def _shape(shape) -> str:
    return str(list(shape)) if shape is not None else "--"


def run(args) -> int:
    from ..inspect.shapes import build_for_input, trace_shapes
    from ..models import model_info

    size = parse_input_size(args.input_size) or model_info(args.name).input_size
    batch = args.batch
    model = build_for_input(args.name, size)
    rows = trace_shapes(model, size, batch=batch)
    titles = [("  " * row.depth) + (f"{row.class_name} ({row.name})" if row.name
                                     else f"{args.name}: {row.class_name}") for row in rows]
    width = max(len(title) for title in titles)
    print(f"input shape: {[batch, *size]}")
    for title, row in zip(titles, rows):
        if row.output_shape is None and row.input_shape is None:
            print(f"{title:<{width}}  (container, not called itself)")
            continue
        line = f"{title:<{width}}  output shape: {_shape(row.output_shape)}"
        if row.window:
            line = f"{line:<{width + 36}}  {row.window}"
        print(line.rstrip())
    return 0
