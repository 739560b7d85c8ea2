"""cnnzoo eval: accuracy, per-class accuracy and confusion matrix of a trained run."""

from __future__ import annotations

from ._args import add_device


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a trained run on its test set",
        description="Accuracy, per-class accuracy and the confusion matrix of a run's model on "
                    "its data set's test split (or --split train/val); the matrix is also saved "
                    "as DIR/confusion.png (confusion-train.png for the training split, "
                    "confusion-best.png for --best).")
    p.add_argument("run_dir", metavar="DIR", help="a run directory written by cnnzoo train")
    p.add_argument("--split", default="test", choices=("test", "train", "val"),
                   help="the images to evaluate on: test (default), train (those the run "
                        "trained on) or val (its validation hold-out)")
    p.add_argument("--best", action="store_true",
                   help="the weights of the epoch of best validation accuracy "
                        "(best.safetensors) instead of the final ones")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the data set's files are (the run's by default)")
    add_device(p)
    p.add_argument("--fp32", action="store_true",
                   help="compute in float32 even if the run trained with --amp (by default "
                        "the model computes as in the run's own evaluations)")
    p.set_defaults(func=run)


# a wider matrix does not read as a table in a terminal (100 classes: 500 columns)
MATRIX_MAX_CLASSES = 20
TOP_CONFUSIONS = 10


def _print_top_confusions(result, width: int) -> None:
    """In place of a matrix too wide to print: its largest cells off the diagonal."""
    pairs = sorted(((count, true, predicted)
                    for true, row in enumerate(result.confusion)
                    for predicted, count in enumerate(row) if count and true != predicted),
                   key=lambda cell: (-cell[0], cell[1], cell[2]))[:TOP_CONFUSIONS]
    where = f"; the whole matrix: {result.plot}" if result.plot else ""
    print(f"\nmost frequent confusions ({len(result.classes)} classes{where}):")
    if not pairs:
        print("  none: every image was classified correctly")
        return
    taken = max(len("predicted"), *(len(result.classes[p]) for _, _, p in pairs))
    width = max(width, len("true"))
    print(f"  {'true':<{width}}  {'predicted':<{taken}}  images")
    for count, true, predicted in pairs:
        print(f"  {result.classes[true]:<{width}}  {result.classes[predicted]:<{taken}}  "
              f"{count:>6,}")


def run(args) -> int:
    from ..training import evaluate, load_run
    from ..device import pick_device
    from ._args import progress_bars, warn_amp

    run = load_run(args.run_dir, best=args.best)
    if run.config.get("amp") and not args.fp32:
        warn_amp(pick_device(args.device), evaluating=True)
    with progress_bars(f"evaluating on {args.split}") as progress:
        result = evaluate(run, split=args.split, data_dir=args.data_dir, device=args.device,
                          fp32=args.fp32, progress=progress)
    precision = " (bf16 autocast, as the run trained; --fp32 for float32)" if result.amp else ""
    weights = " with the best epoch's weights" if args.best else ""
    print(f"{args.split} accuracy {result.accuracy:.4f} on {result.num_examples:,} images"
          f"{weights}{precision}")
    width = max(len(c) for c in result.classes)
    print("\nper-class accuracy:")
    for name, acc in zip(result.classes, result.per_class):
        print(f"  {name:<{width}}  {acc:.3f}")
    if len(result.classes) <= MATRIX_MAX_CLASSES:
        print("\nconfusion matrix (rows: true, columns: predicted):")
        cell = max(5, len(str(max(max(r) for r in result.confusion))) + 1)
        print(" " * (width + 2) + "".join(f"{i:>{cell}}" for i in range(len(result.classes))))
        for i, (name, row) in enumerate(zip(result.classes, result.confusion)):
            print(f"  {name:<{width}}" + "".join(f"{v:>{cell}}" for v in row) + f"   ({i})")
    else:
        _print_top_confusions(result, width)
    if result.plot:
        print(f"\nsaved {result.plot}")
    return 0
