"""``cnnzoo report DIR``: one self-contained HTML page about a trained run."""

from __future__ import annotations

import sys

from ..show.limits import MAX_COUNT
from ._args import add_device, add_out, positive_int, progress_bars


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write a self-contained HTML report of a trained run",
        description="One HTML file with the run's configuration, training curves, test "
                    "accuracy per class and confusion matrix, predictions, the model's summary "
                    "table and block diagram, first-layer kernels and feature maps. Pictures "
                    "are embedded, so the file needs nothing else to open.")
    parser.add_argument("run_dir", metavar="DIR", help="a run directory written by cnnzoo train")
    add_out(parser, "the HTML file (default DIR/report.html)")
    parser.add_argument("--count", type=positive_int, default=16, metavar="N",
                        help=f"test images shown with predictions (default 16, at most "
                             f"{MAX_COUNT})")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="where the data set's files are (the run's by default)")
    add_device(parser, help="where the test set is evaluated: auto (the default), cpu, cuda, "
                            "cuda:N or mps")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..report import write_report

    with progress_bars("evaluating the test set") as progress:
        path, report = write_report(args.run_dir, args.out, device=args.device, count=args.count,
                                    data_dir=args.data_dir, progress=progress, force=args.force)
    for note in report.notes:
        print(f"cnnzoo: note: {note}", file=sys.stderr)
    print(path)
    return 0
