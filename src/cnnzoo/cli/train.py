"""cnnzoo train: train a zoo model on a data set and print its result."""

from __future__ import annotations

import math
import sys
import time

from ..errors import CnnzooError
from ..train.recipes import RECIPES
from . import interrupted
from ._args import (add_device, add_fast, add_fast_path, parse_assignments, positive_float,
                    positive_int, seed, user_path, warn_amp)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model (LeNet on Fashion-MNIST by default)",
        description="Train a zoo model with the textbook's recipe (d2l) or cnnzoo's own "
                    "(modern), leaving a run directory with config.json, metrics.csv, "
                    "curves.png, checkpoint.pt and model.safetensors.")
    p.add_argument("model", nargs="?", default="lenet5_d2l",
                   help="registry name (see `cnnzoo models`); default lenet5_d2l")
    p.add_argument("--data", default="fashion-mnist",
                   help="fashion-mnist (default), mnist, cifar10, folder or synthetic")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the data set's files are (searched otherwise; for 'folder': the "
                        "image folder itself)")
    p.add_argument("--recipe", default="d2l", choices=RECIPES,
                   help="d2l: the textbook's; modern: cnnzoo's, more accurate; best: the "
                        "longest, for resnet9_fmnist (default d2l)")
    p.add_argument("--epochs", type=positive_int, help="number of epochs (recipe's by default)")
    p.add_argument("--lr", type=positive_float, help="peak learning rate")
    p.add_argument("--batch-size", type=positive_int, help="training batch size")
    p.add_argument("--resize", type=positive_int, help="resize images to SxS before the model")
    add_device(p)
    p.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
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


class ProgressReporter:
    """One line per epoch on standard output; on standard error while an epoch runs, a tqdm bar
    when that is a terminal, and otherwise (a log file, a pipe) a plain line at most every
    ``LOG_EVERY_SECONDS``, so that a long epoch in a log still shows it is moving."""

    LOG_EVERY_SECONDS = 60.0

    def __init__(self):
        self.stream = sys.stdout
        self.bar_stream = sys.stderr
        self.tty = self.bar_stream.isatty()
        self.bar = None
        self.run_dir = None

    def start(self, info):
        self.run_dir = info["run_dir"]
        resumed = f", resuming at epoch {info['start_epoch']}" if info["start_epoch"] > 1 else ""
        recipe = info["recipe"]
        print(f"training {info['model']} ({info['parameters']:,} parameters) on "
              f"{info['data']} with the {recipe['name']} recipe, "
              f"{recipe['epochs']} epoch{'s' * (recipe['epochs'] != 1)}, lr {recipe['lr']:g}, batch {recipe['batch_size']}, "
              f"input {'x'.join(map(str, info['input_size']))}, device {info['device_used']}"
              f"{resumed}", file=self.stream)
        print(f"run directory: {self.run_dir}", file=self.stream)
        if info.get("fast_path"):
            from ..train.fastpath import describe

            print(f"fast path: {describe(info['fast_path'])}", file=self.stream)
        if info.get("amp"):  # a resumed run's flags come from its config
            warn_amp(info["device_used"])

    def note(self, text):
        print(f"cnnzoo: {text}", file=self.bar_stream, flush=True)

    def warn(self, text):
        print(f"cnnzoo: warning: {text}", file=self.bar_stream, flush=True)

    def epoch_start(self, epoch, epochs, num_batches):
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=num_batches, desc=f"epoch {epoch}/{epochs}", unit="batch",
                            file=self.bar_stream, leave=False, dynamic_ncols=True)
        self.epoch, self.epochs, self.num_batches, self.done = epoch, epochs, num_batches, 0
        self.epoch_started = self.logged_at = time.monotonic()

    def step(self):
        if self.bar is not None:
            self.bar.update()
            return
        self.done += 1
        now = time.monotonic()
        if now - self.logged_at >= self.LOG_EVERY_SECONDS and self.done < self.num_batches:
            self.logged_at = now
            left = (now - self.epoch_started) / self.done * (self.num_batches - self.done)
            print(f"epoch {self.epoch}/{self.epochs}: {self.done} of {self.num_batches} "
                  f"batches, about {_duration(left)} left in this epoch",
                  file=self.bar_stream, flush=True)

    def epoch_end(self, row):
        from ..train.rundir import rate_text

        if self.bar is not None:
            self.bar.close()
            self.bar = None
        print(f"epoch {row['epoch']:>3}/{self.epochs}  loss {row['train_loss']:.3f}  "
              f"train acc {row['train_acc']:.3f}  test acc {row['test_acc']:.3f}  "
              f"{row['seconds']:.1f} s  {rate_text(row['examples_per_sec'])} examples/sec",
              file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _duration(seconds: float) -> str:
    """12 s, 4 min 5 s, 1 h 20 min."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def time_line(result, compiled: bool) -> str:
    """Where the wall time went: "9.2 s wall time in all: 3.3 s training steps, 0.6 s recording
    the CUDA graph, ...", each part of at least 0.05 s."""
    warm_up = "compilation" if compiled else "recording the CUDA graph"
    parts = [(result.train_seconds, "training steps"), (result.warmup_seconds, warm_up),
             (result.setup_seconds, "set-up (data, model, device)"),
             (result.eval_seconds, "evaluation"),
             (result.save_seconds, "checkpoints, plots, weights")]
    rest = result.wall_seconds - sum(seconds for seconds, _ in parts)
    listed = ", ".join(f"{seconds:.1f} s {what}" for seconds, what in parts + [(rest, "other")]
                       if seconds >= 0.05)
    return f"{result.wall_seconds:.1f} s wall time in all: {listed}"


# a new run's options as (attribute, as written, value when not given): beside --resume each
# would be ignored
NEW_RUN_OPTIONS = (("model", "NAME", "lenet5_d2l"), ("data", "--data", "fashion-mnist"),
                   ("recipe", "--recipe", "d2l"), ("lr", "--lr", None),
                   ("batch_size", "--batch-size", None), ("resize", "--resize", None),
                   ("seed", "--seed", 0), ("out", "--out", None), ("subset", "--subset", None),
                   ("settings", "--set", None), ("model_args", "--model-arg", None),
                   ("compile", "--compile", False), ("amp", "--amp", False),
                   ("channels_last", "--channels-last", False),
                   ("cuda_graphs", "--cuda-graphs", False), ("fast", "--fast", False))


def _check_resume(args) -> None:
    """Refuse, in one line, the options of a new run beside --resume: the resumed run keeps
    its own model, data, recipe and fast path (--epochs, --device and --data-dir may change)."""
    given = [flag for name, flag, default in NEW_RUN_OPTIONS if getattr(args, name) != default]
    if given:
        raise CnnzooError(f"--resume continues a run as it was set up; leave out "
                          f"{', '.join(given)} (only --epochs, --device and --data-dir may "
                          f"be given)")


def run(args) -> int:
    import typing

    from ..train import Recipe, train
    from ..train.rundir import model_arguments

    if args.resume:
        _check_resume(args)
    fields = {k: v for k, v in typing.get_type_hints(Recipe).items() if k != "name"}
    settings = parse_assignments(args.settings, fields, "--set")
    for flag in ("epochs", "lr", "batch_size", "resize"):
        if flag in settings and getattr(args, flag) is not None:
            raise CnnzooError(f"--set {flag}=... and --{flag.replace('_', '-')} both given; "
                              f"give one")
        settings.setdefault(flag, getattr(args, flag))
    model_args = parse_assignments(
        args.model_args, {key: type(default) if default is not None else int | float | str
                          for key, default in model_arguments(args.model).items()},
        "--model-arg") if args.model_args else None
    reporter = ProgressReporter()
    try:
        result = train(args.model, args.data, args.recipe, device=args.device,
                       seed=args.seed, out=args.out, compile=args.compile, amp=args.amp,
                       channels_last=args.channels_last, cuda_graphs=args.cuda_graphs,
                       fast=args.fast, resume=args.resume,
                       data_dir=args.data_dir, train_subset=args.subset, model_args=model_args,
                       reporter=reporter, **settings)
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM
        reporter.close()
        where = reporter.run_dir
        return interrupted(error, f"; continue with: cnnzoo train --resume {where}"
                           if where else "")
    finally:
        reporter.close()
    if result.rank != 0:  # under torchrun, rank 0 speaks for all
        return 0
    final = result.final
    print(f"loss {final['train_loss']:.3f}, train acc {final['train_acc']:.3f}, "
          f"test acc {final['test_acc']:.3f}")
    if math.isfinite(result.examples_per_sec):
        print(f"{result.examples_per_sec:,.0f} examples/sec on {result.device} (training steps)")
    else:
        print(f"no step timed on {result.device}: every step was warm-up (more steps measure "
              f"the throughput)")
    print(time_line(result, args.compile))
    print(f"run directory: {result.run_dir}")
    return 0
