"""``cnnzoo summary NAME``: the torchinfo-style table of a model, with receptive fields, MACs
and a training-memory estimate."""

from __future__ import annotations

from ._args import add_device, add_input_size, parse_input_size

FORMATS = ("table", "markdown", "json", "csv")


def register(subparsers) -> None:
    from ..inspect.table import COLUMNS, DEFAULT_COLUMNS

    parser = subparsers.add_parser(
        "summary", help="torchinfo-style summary with receptive fields, MACs and memory",
        description="Summarize a model as torchinfo 1.8 does (same numbers), then MACs, FLOPs "
                    "and what one training step holds in memory. Columns: "
                    f"{', '.join(COLUMNS)}.")
    parser.add_argument("name", help="a registered model (see `cnnzoo models`)")
    add_input_size(parser, batch=True)
    parser.add_argument("--depth", default="3", help="deepest level of blocks shown (default 3)")
    parser.add_argument("--columns", default=",".join(DEFAULT_COLUMNS),
                        help="comma-separated columns (default %(default)s), e.g. "
                             "output_size,num_params,receptive_field,jump,macs or, as the "
                             "notes on classic networks tabulate VGG-16, "
                             "output_size,activations,weights")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default="sgd",
                        help="optimizer whose state the memory estimate includes")
    parser.add_argument("--measure", action="store_true",
                        help="also measure the peak memory of real training steps (CUDA only)")
    add_device(parser, default=None,
               help="run the summary there, on a copy of the model: auto, cpu, cuda, cuda:N or "
                    "mps (default: the CPU)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..errors import CnnzooError
    from ..inspect.shapes import build_for_input
    from ..inspect.summary import summary
    from ..models import model_info
    from ..device import pick_device

    size = parse_input_size(args.input_size, batch=True) or model_info(args.name).input_size
    batch, size = (size[0], size[1:]) if len(size) == 4 else (1, size)
    try:
        depth = int(args.depth)
    except ValueError:
        raise CnnzooError(f"--depth {args.depth!r} is not a whole number") from None
    if depth < 0:
        raise CnnzooError(f"--depth must be 0 or more, not {depth}")
    model = build_for_input(args.name, size)
    result = summary(model, input_size=(batch, *size), depth=depth, columns=args.columns,
                     optimizer=args.optimizer, measure=args.measure,
                     device=pick_device(args.device) if args.device else None)
    print(result.table(args.format))
    if args.format == "table":
        print(result.details())
    return 0
