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
    parser.add_argument("--weights", action="store_true",
                        help="only the models that ship trained Fashion-MNIST weights, with "
                             "their test accuracy, mult-adds and file size")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..inspect.catalog import catalog

    if args.weights:
        return _weights(args.pattern)
    rows = catalog(args.pattern)
    if not rows:
        raise CnnzooError(f"no model matches {args.pattern!r}; `cnnzoo models` lists them all")
    header = ("name", "family", "year", "input", "classes", "parameters", "source")
    print(text_table(header, [
        (row.name, row.family, _text(row.year),
         "x".join(map(str, row.input_size)) if row.input_size else "—", _text(row.num_classes),
         f"{row.params:,}", row.source) for row in rows], numeric={2, 4, 5}))
    return 0


def _weights(pattern) -> int:
    from ..models import list_models
    from ..models.weights import get_weights

    names = list_models(pattern, weights=True)
    if not names:
        raise CnnzooError(f"no model with shipped weights matches {pattern!r}; `cnnzoo models "
                          f"--weights` lists them all")
    header = ("name", "weights", "test acc (mean, range over seeds)", "seed", "parameters",
              "mult-adds", "file", "recipe")
    rows = []
    for name in names:
        meta = get_weights(name).meta
        test = meta["test_acc"]
        rows.append((name, meta["weights"], f"{test['mean']:.4f} ({test['min']:.4f}-"
                     f"{test['max']:.4f}, {len(test['seeds'])} seeds)", str(meta["seed"]),
                     f"{meta['parameters']:,}", f"{meta['mult_adds']:,}",
                     f"{meta['file_size'] / 1024:,.0f} KiB", meta["recipe"]["name"]))
    print(text_table(header, rows, numeric={3, 4, 5, 6}))
    print("load one with cnnzoo.get_model(NAME, weights='fashion-mnist'); its record: "
          "cnnzoo.get_weights(NAME).meta")
    return 0


def _text(value) -> str:
    return "—" if value is None else str(value)
