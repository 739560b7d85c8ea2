"""cnnzoo train: train a zoo model on a data set and print its result (the library's
``TextReporter`` says it, in the command line's words)."""

from __future__ import annotations

from ..errors import CnnzooError
from ..training.config import DEFAULT_MODEL
from ..training.recipes import RECIPES
from . import interrupted
from ._args import (add_device, add_fast, add_fast_path, parse_assignments, positive_float,
                    positive_int, seed, user_path)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model (LeNet on Fashion-MNIST by default)",
        description="Train a zoo model with the textbook's recipe (d2l) or cnnzoo's own "
                    "(modern), leaving a run directory with config.json, metrics.csv, "
                    "curves.png, checkpoint.pt and model.safetensors.")
    p.add_argument("model", nargs="?", default=None,
                   help=f"registry name (see `cnnzoo models`); default {DEFAULT_MODEL}")
    p.add_argument("--data", default=None,
                   help="fashion-mnist (default), mnist, cifar10, folder or synthetic")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the data set's files are (searched otherwise; for 'folder': the "
                        "image folder itself)")
    p.add_argument("--recipe", default=None, choices=RECIPES,
                   help="d2l: the textbook's; modern: cnnzoo's, more accurate; best: the "
                        "longest, for resnet9_fmnist (default d2l)")
    p.add_argument("--epochs", type=positive_int, help="number of epochs (recipe's by default)")
    p.add_argument("--lr", type=positive_float, help="peak learning rate")
    p.add_argument("--batch-size", type=positive_int, help="training batch size")
    p.add_argument("--resize", type=positive_int, help="resize images to SxS before the model")
    add_device(p)
    p.add_argument("--seed", type=seed, default=None, help="random seed (default 0)")
    p.add_argument("--out", type=user_path, help="run directory (default runs/MODEL-DATE-TIME)")
    add_fast_path(p)
    add_fast(p)
    p.add_argument("--resume", type=user_path,
                   metavar="DIR", help="continue the run in DIR from its last checkpoint")
    p.add_argument("--subset", type=positive_int, metavar="N",
                   help="train on a stratified subset of N images (quick runs)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", dest="settings",
                   help="change one field of the recipe, e.g. --set erasing=0 --set "
                        "weight_decay=1e-3 (fields: docs/training.md); repeatable")
    p.add_argument("--model-arg", action="append", metavar="NAME=VALUE", dest="model_args",
                   help="an argument of the model's builder, e.g. --model-arg width=64 for "
                        "resnet9_fmnist (a wrong NAME lists the model's); repeatable")
    p.set_defaults(func=run)


def run(args) -> int:
    import typing

    from ..training import Recipe, train
    from ..training.progress import TextReporter
    from ..training.rundir import model_arguments
    from . import as_flags

    fields = {k: v for k, v in typing.get_type_hints(Recipe).items() if k != "name"}
    settings = parse_assignments(args.settings, fields, "--set")
    for flag in ("epochs", "lr", "batch_size", "resize"):
        if flag in settings and getattr(args, flag) is not None:
            raise CnnzooError(f"--set {flag}=... and --{flag.replace('_', '-')} both given; "
                              f"give one")
        settings.setdefault(flag, getattr(args, flag))
    if args.model_args and args.resume:  # refused beside --resume, whatever the model takes
        model_args = dict(item.partition("=")[::2] for item in args.model_args)
    elif args.model_args:
        model_args = parse_assignments(
            args.model_args, {key: type(default) if default is not None else int | float | str
                              for key, default in model_arguments(args.model or DEFAULT_MODEL
                                                                  ).items()}, "--model-arg")
    else:
        model_args = None
    reporter = TextReporter(wording=as_flags)
    try:
        train(args.model, args.data, args.recipe, device=args.device, seed=args.seed, out=args.out,
              compile=args.compile, amp=args.amp, channels_last=args.channels_last,
              cuda_graphs=args.cuda_graphs, fast=args.fast, resume=args.resume,
              data_dir=args.data_dir, train_subset=args.subset, model_args=model_args,
              reporter=reporter, **settings)
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM
        reporter.close()
        where = reporter.run_dir
        return interrupted(error, f"; continue with: cnnzoo train --resume {where}"
                           if where else "")
    return 0
