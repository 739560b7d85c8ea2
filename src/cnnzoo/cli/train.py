"""cnnzoo train: train a zoo model on a data set and print its result (the library's
``TextReporter`` says it, in the command line's words)."""

from __future__ import annotations


from ..errors import CnnzooError
from ..training.config import DEFAULT_MODEL
from ..training.recipes import RECIPES
from . import interrupted
from ._args import (accuracy, add_device, add_fast, add_fast_path, parse_assignments,
                    positive_float, positive_int, seed, user_path, val_size)


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
    add_device(p, default=None)
    p.add_argument("--seed", type=seed, default=None, help="random seed (default 0)")
    p.add_argument("--out", type=user_path, help="run directory (default runs/MODEL-DATE-TIME)")
    add_fast_path(p)
    add_fast(p)
    p.add_argument("--resume", type=user_path,
                   metavar="DIR", help="continue the run in DIR from its last checkpoint")
    p.add_argument("--subset", type=positive_int, metavar="N",
                   help="train on a stratified subset of N images (quick runs)")
    p.add_argument("--val", type=val_size, metavar="N|F",
                   help="hold N training images (or a fraction F < 1) out for validation. "
                        "Epochs are judged on them, the best epoch's weights are kept, and the "
                        "test set is evaluated once, at the end. 0: none. Default: 5000 for "
                        "fashion-mnist, mnist and cifar10; 0 with the d2l recipe (the book's "
                        "protocol)")
    p.add_argument("--target-acc", type=accuracy, metavar="A",
                   help="stop after the first epoch whose validation (else test) accuracy "
                        "reaches A, and report the time to reach it as MLPerf does")
    p.add_argument("--deterministic", action="store_true",
                   help="torch's deterministic algorithms only; an operation without one is "
                        "refused (docs/training.md says what is reproducible)")
    p.add_argument("--tensorboard", action="store_true",
                   help="write TensorBoard event files into the run directory's events/ "
                        "(pip install 'cnnzoo[tensorboard]')")
    p.add_argument("--config", type=user_path, metavar="FILE",
                   help="the run's settings from a YAML or JSON file (a run's config.json "
                        "reruns it); flags given beside it override it")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration as JSON (a file for --config) and "
                        "exit without training")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", dest="settings",
                   help="change one field of the recipe, e.g. --set erasing=0 --set "
                        "weight_decay=1e-3 (fields: docs/training.md); repeatable")
    p.add_argument("--model-arg", action="append", metavar="NAME=VALUE", dest="model_args",
                   help="an argument of the model's builder, e.g. --model-arg width=64 for "
                        "resnet9_fmnist (a wrong NAME lists the model's); repeatable")
    p.set_defaults(func=run)


# the flags that set train()'s parameters of the same name
PARAMETER_FLAGS = ("model", "data", "recipe", "data_dir", "device", "seed", "compile", "amp",
                   "channels_last", "cuda_graphs", "fast", "val", "target_acc",
                   "deterministic", "tensorboard")


def run(args) -> int:
    import json
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
        if getattr(args, flag) is not None:
            settings[flag] = getattr(args, flag)
    # a flag not given is None (or False for a switch); 0 (--val 0, --seed 0) is given
    chosen = {name: getattr(args, name) for name in PARAMETER_FLAGS
              if getattr(args, name) is not None and getattr(args, name) is not False}
    if args.subset is not None:
        chosen["train_subset"] = args.subset
    if args.config is not None:
        if args.resume:
            raise CnnzooError("--config starts a new run from a file; --resume continues one "
                              "as it was set up: give one of them")
        from ..training.runfile import read_run_file

        from_file = read_run_file(args.config)
        # a flag overrides the file; the recipe named by a flag replaces the file's, fields too
        if "recipe" in chosen:
            from_file = {key: value for key, value in from_file.items() if key not in fields}
        chosen = dict(from_file, **chosen, **settings)
        model_args = dict(chosen.pop("model_args", None) or {})
        settings = {key: chosen.pop(key) for key in list(chosen) if key in fields}
    else:
        model_args = {}
    model = chosen.pop("model", None)
    if args.model_args and args.resume:  # refused beside --resume, whatever the model takes
        model_args.update(item.partition("=")[::2] for item in args.model_args)
    elif args.model_args:
        model_args.update(parse_assignments(
            args.model_args, {key: type(default) if default is not None else int | float | str
                              for key, default in model_arguments(model or DEFAULT_MODEL
                                                                  ).items()}, "--model-arg"))
    if args.print_config:
        from ..training import run_config

        config = run_config(model, resume=args.resume, out=args.out, **chosen,
                            model_args=model_args or None, **settings)
        print(json.dumps(config, indent=2))
        return 0
    reporter = TextReporter(wording=as_flags)
    try:
        train(model, out=args.out, resume=args.resume, model_args=model_args or None,
              reporter=reporter, **chosen, **settings)
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM
        reporter.close()
        where = reporter.run_dir
        return interrupted(error, f"; continue with: cnnzoo train --resume {where}"
                           if where else "")
    return 0
