"""cnnzoo leaderboard: train models with a recipe and set the results beside the book's."""

from __future__ import annotations

import platform
import shlex

from ..training.recipes import RECIPES
from ._args import (add_device, add_fast, add_fast_path, check_fast_path, positive_int,
                    user_path)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "leaderboard", help="reproduce the book's Fashion-MNIST results (or beat them) in a table",
        description="Train each model with the recipe and write OUT/RESULTS.md (the book's "
                    "loss, train and test accuracy beside ours, with the difference), "
                    "OUT/leaderboard.png (test accuracy against parameters and training time) "
                    "and OUT/results.json. The default models are the book's nine.")
    p.add_argument("--recipe", default="d2l", choices=RECIPES,
                   help="d2l (default), modern, or best (cnnzoo's resnet9_fmnist entry)")
    p.add_argument("--models", metavar="PATTERN",
                   help="registry patterns, comma-separated, e.g. 'lenet5*,resnet18_d2l' "
                        "(default: the book's nine models)")
    add_device(p)
    p.add_argument("--out", type=user_path,
                   default="leaderboard", help="output folder (default leaderboard)")
    p.add_argument("--epochs", type=positive_int, help="epochs instead of the recipe's (labelled)")
    p.add_argument("--resize", type=positive_int, help="another input size (labelled)")
    p.add_argument("--subset", type=positive_int, metavar="N",
                   help="train on N images (labelled)")
    p.add_argument("--seeds", type=positive_int, default=1,
                   help="seeds per model; the table shows mean ± half-range (default 1)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where Fashion-MNIST's files are (searched otherwise)")
    add_fast_path(p)
    add_fast(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..device import pick_device
    from ..leaderboard import run_leaderboard, select_models, write_board
    from ..training.progress import TextReporter
    from . import as_flags

    models = select_models(args.models, args.recipe)
    print(f"leaderboard: {len(models)} model(s) with the {args.recipe} recipe: "
          f"{', '.join(models)}")
    device = pick_device(args.device)
    check_fast_path(args, device)
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if device.type == "cuda":
        machine = f"{torch.cuda.get_device_name(device)}, {machine}"
    command = "cnnzoo " + " ".join(shlex.quote(a) for a in args.argv)
    finished = []

    def done(entry):  # the board so far is written as each model finishes: a cut run keeps it,
        finished.append(entry)  # and names the models it lacks
        write_board(finished, args.out, machine, command, pending=models[len(finished):])
        acc = sum(entry.test_acc) / len(entry.test_acc)
        print(f"== {entry.model}: test acc {acc:.4f}"
              + (f" ({entry.reduced})" if entry.reduced else ""), flush=True)

    entries = run_leaderboard(args.recipe, models, out=args.out, device=args.device,
                              epochs=args.epochs, resize=args.resize, train_subset=args.subset,
                              seeds=args.seeds, data_dir=args.data_dir, on_entry=done,
                              compile=args.compile, amp=args.amp,
                              channels_last=args.channels_last,
                              cuda_graphs=args.cuda_graphs, fast=args.fast,
                              reporter_factory=lambda: TextReporter(as_flags, results=False))
    table, picture = write_board(entries, args.out, machine, command)
    print(table.read_text())
    print(f"wrote {table} and {picture}")
    return 0
