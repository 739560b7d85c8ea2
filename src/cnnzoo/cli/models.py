"""``cnnzoo models [PATTERN]``: the registered models with their metadata and parameter counts."""

from __future__ import annotations

from ..errors import CnnzooError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "models", help="list the models of the zoo",
        description="List the registered models: family, year, default input, classes, "
                    "parameters (counted on a model built without initialising it) and where the "
                    "variant comes from.")
    parser.add_argument("pattern", nargs="?", default=None,
                        help="a shell pattern ('resnet*') or a part of the name ('vgg')")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..inspect.catalog import catalog

    rows = catalog(args.pattern)
    if not rows:
        raise CnnzooError(f"no model matches {args.pattern!r}; `cnnzoo models` lists them all")
    header = ("name", "family", "year", "input", "classes", "parameters", "source")
    table = [header] + [
        (row.name, row.family, _text(row.year),
         "x".join(map(str, row.input_size)) if row.input_size else "—", _text(row.num_classes),
         f"{row.params:,}", row.source) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    numeric = {2, 4, 5}
    for line in table:
        cells = [cell.rjust(width) if i in numeric else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(line, widths))]
        print("  ".join(cells).rstrip())
    return 0


def _text(value) -> str:
    return "—" if value is None else str(value)
