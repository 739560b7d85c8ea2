"""``cnnzoo compare DIR... [--out FILE]``: runs side by side, a table and their curves."""

from __future__ import annotations

from ._args import add_out


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="compare runs: a table and their curves overlaid",
        description="Read run directories (their config.json and metrics.csv; no weights are "
                    "loaded) and print a row per run: model, recipe, the settings the runs "
                    "differ in, epochs done, best and final test accuracy, seconds trained. "
                    "A run still training or stopped early is shown as far as it got. The "
                    "test accuracy and training loss curves of all runs are drawn in one "
                    "picture, whose path is printed.")
    parser.add_argument("runs", nargs="+", metavar="DIR",
                        help="run directories, or patterns such as 'runs/*' (their matches "
                             "that hold no run are passed over)")
    add_out(parser, "the picture of the curves, in the format its name ends in: .png, .svg, "
                    ".pdf or .jpg (default: compare.png here)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..plots import figure_file, save_figure
    from ..training import compare_runs

    # checked before the runs are read; the default name is cnnzoo's own picture, made again
    out = figure_file(args.out, force=args.force) or figure_file("compare.png", force=True)
    comparison = compare_runs(args.runs)
    print(comparison.table())
    save_figure(comparison.figure(), out)
    print(f"curves: {Path(out)}")
    return 0
