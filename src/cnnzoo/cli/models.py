"""``cnnzoo models [PATTERN]``: the registered models with their metadata and parameter counts."""

from __future__ import annotations

from .._tables import text_table
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
    print(text_table(header, [
        (row.name, row.family, _text(row.year),
         "x".join(map(str, row.input_size)) if row.input_size else "—", _text(row.num_classes),
         f"{row.params:,}", row.source) for row in rows], numeric={2, 4, 5}))
    return 0


def _text(value) -> str:
    return "—" if value is None else str(value)
