"""The training loop: data on the device, metrics summed on the device, one read per epoch.

``train(...)`` resolves a recipe for a model, trains it on a data set and leaves a run directory
(see ``rundir``). Nothing here prints: progress goes to a ``Reporter`` the caller passes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from .._lazy import import_in_background
from ..data.catalog import canonical_name
from ..errors import CnnzooError
from ..models import model_info
from . import allocator, distributed, fastpath
from .checkpoint import (load_checkpoint, save_checkpoint, save_weights, write_json)
from .recipes import Recipe, recipe_for
from .rundir import (CHECKPOINT, CONFIG, CURVES, METRICS, WEIGHTS, RunLock, build_model,
                     check_model_args, data_options, holds_run, is_run_file, read_config,
                     read_metrics, write_metrics)
from .optim import Schedule, make_optimizer
from .step import GRAPH_WARMUP_STEPS, TrainStep, check_graphs


class TrainingDiverged(CnnzooError):
    """The loss became NaN/inf or exploded; the last good checkpoint is kept."""


class Reporter:
    """Receives progress; the default one stays silent. The command line draws a bar with it."""

    def start(self, info: dict) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, num_batches: int) -> None: ...
    def step(self) -> None: ...
    def epoch_end(self, row: dict) -> None: ...
    def note(self, text: str) -> None: ...   # a word on work that precedes the first epoch
    def warn(self, text: str) -> None: ...   # a run that is not learning (chance_warning)


@dataclass
class TrainResult:
    run_dir: Path
    model: str
    device: str
    history: list[dict]
    wall_seconds: float            # the whole call: data loading, compile, evaluation included
    train_seconds: float           # training steps only (after any compile warm-up)
    examples_per_sec: float        # over training steps only, synchronised
    warmup_seconds: float = 0.0    # compile or graph-recording warm-up, not in examples_per_sec
    setup_seconds: float = 0.0     # before the first step: data read, model built, device ready
    eval_seconds: float = 0.0      # the test set's evaluation after each epoch
    save_seconds: float = 0.0      # checkpoints, metrics, plots and the final weights
    config: dict = field(default_factory=dict)
    rank: int = 0                  # this process's rank under torchrun (0 alone)

    @property
    def final(self) -> dict:
        return self.history[-1]


DIVERGED_LOSS = 1e4  # a mean cross-entropy this large means the weights blew up
STUCK_EPOCHS = 3  # epochs in a row at chance before a run is told it is not learning
PLOT_EVERY_SECONDS = 20.0  # curves.png is redrawn at most this often, and after the last epoch


def at_chance(row: dict, num_classes: int) -> bool:
    """Whether an epoch's training has not left chance: its mean loss at least 97 % of ln K
    (what predicting every class alike gives, with or without label smoothing; a loss far above
    it is worse than chance, not better) and its accuracy under 1/K + 0.05."""
    return (num_classes > 1 and row["train_loss"] >= 0.97 * math.log(num_classes)
            and row["train_acc"] < 1 / num_classes + 0.05)


def chance_warning(history: list[dict], num_classes: int, lr: float,
                   epochs: int) -> str | None:
    """The one-line warning for a run whose training is at chance, or None: said at the last
    epoch of ``epochs``, and after ``STUCK_EPOCHS`` epochs in a row at chance while more are
    to come (then once: the next epochs extend the streak). The book's sigmoid LeNet spends
    its first epoch at chance, so one epoch alone is no alarm until the run ends."""
    row = history[-1]
    if not at_chance(row, num_classes):
        return None
    streak = 0
    for earlier in reversed(history):
        if not at_chance(earlier, num_classes):
            break
        streak += 1
    at = (f"training loss {row['train_loss']:.3f} (chance for {num_classes} classes: "
          f"ln {num_classes} = {math.log(num_classes):.3f}), train acc {row['train_acc']:.3f}")
    if row["epoch"] >= epochs:
        return (f"the run ended at chance, {at}: the model did not learn; train for longer or "
                f"with another learning rate (this run's: --lr {lr:g})")
    if streak == STUCK_EPOCHS:
        return (f"still at chance after {streak} epochs, {at}: the model is not learning; "
                f"lr {lr:g} may be too high or too low (Ctrl-C, then e.g. --lr {lr / 10:g})")
    return None


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; a device this machine lacks (``cuda:1`` on a
    machine with one GPU included) is a one-line ``CnnzooError`` naming those it has."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _has_mps():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CnnzooError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and not gpus:
        problem = "no CUDA GPU is available here"
    elif device.type == "cuda" and device.index is not None and device.index >= gpus:
        problem = f"this machine has {gpus} CUDA GPU{'s' if gpus > 1 else ''}"
    elif device.type == "mps" and not _has_mps():
        problem = "MPS is not available here"
    else:
        return device
    here = ["cpu"] + (["cuda"] + [f"cuda:{index}" for index in range(gpus)] if gpus else []) \
        + (["mps"] if _has_mps() else [])
    raise CnnzooError(f"device {name} asked for, but {problem}; use {', '.join(here)} or auto")


def _has_mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def cpu_has_fast_bf16() -> bool | None:
    """Whether this CPU runs bf16 convolutions and matrix products in hardware (on x86,
    AVX-512 or AMX), as oneDNN judges it; None where torch cannot say (no oneDNN)."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def bf16_emulated(device: torch.device) -> bool:
    """True on a CPU that oneDNN says has no bf16 arithmetic (False where it cannot say)."""
    return device.type == "cpu" and cpu_has_fast_bf16() is False


def amp_warning(device: torch.device, *, evaluating: bool = False) -> str | None:
    """The one-line warning for bf16 autocast on a CPU that would emulate it, or None;
    ``evaluating``: for evaluating a run that trained with ``--amp``.

    On a 2-core AVX2 AMD EPYC, d2l's LeNet trained at 1,154 examples/s with ``--amp
    --channels-last`` against 8,597 in fp32 (``cnnzoo bench``, BENCHMARKS.md): 7x slower.
    """
    if not bf16_emulated(device):
        return None
    what, advice = (("the run trained with --amp, and evaluating as it did", "pass --fp32")
                    if evaluating else ("--amp", "leave --amp out"))
    return (f"this CPU has no bf16 arithmetic for oneDNN to use (on x86: AVX-512 or AMX), so "
            f"{what} emulates it and runs several times slower than fp32 here; {advice}")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it is honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def xavier_init(model: nn.Module) -> None:
    """d2l's train_ch6 initialisation: Xavier-uniform on every Conv2d and Linear weight."""
    for module in model.modules():
        if type(module) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(module.weight)


def _batches(dataset, recipe: Recipe, input_hw, train: bool, seed: int, stats):
    from ..data import Augment, BatchIterator

    augment = None
    if train and (recipe.flip or recipe.crop_padding or recipe.erasing):
        augment = Augment(crop_padding=recipe.crop_padding, flip=recipe.flip,
                          erasing=recipe.erasing)
    resize = None if tuple(dataset.image_size[1:]) == tuple(input_hw) else tuple(input_hw)
    return BatchIterator(dataset, recipe.batch_size if train else recipe.eval_batch_size,
                         shuffle=train, seed=seed, resize=resize, normalize=stats,
                         augment=augment)


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def test_logits(net: nn.Module, x: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """The logits of an evaluating ``net`` for ``x``; with ``flip``, the mean of those for each
    image and its mirror image (test-time augmentation)."""
    logits = net(x)
    if flip:
        logits = (logits + net(x.flip(-1))) / 2
    return logits


@torch.inference_mode()
def evaluate_batches(net: nn.Module, batches, num_classes: int, amp: bool = False,
                     channels_last: bool = False, flip: bool = False, on_batch=None):
    """Confusion matrix (true x predicted, int64, on the device) of ``net`` over ``batches``;
    ``flip`` averages each image's logits with its mirror image's; ``on_batch()``, if given,
    is called after each batch."""
    was_training = net.training
    net.eval()
    confusion = None
    layout = memory_format(channels_last)
    try:
        for x, y in batches:
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
                logits = test_logits(net, x.contiguous(memory_format=layout), flip)
            pred = logits.argmax(dim=1)
            counts = torch.bincount(y * num_classes + pred, minlength=num_classes ** 2)
            confusion = counts if confusion is None else confusion + counts
            if on_batch is not None:
                on_batch()
    finally:
        net.train(was_training)
    if confusion is None:
        raise CnnzooError("nothing to evaluate: the data set is empty")
    return confusion.view(num_classes, num_classes)


def _check_input(model: nn.Module, name: str, input_size) -> None:
    """One cheap forward at batch 2 so a resize the model cannot take fails before training."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *input_size))
    except CnnzooError:
        raise
    except RuntimeError as error:
        from ..inspect.shapes import too_small_for

        c, h, w = input_size
        reason = too_small_for(model, input_size)
        if reason is not None:
            raise CnnzooError(f"{name}: {reason} (--resize sets the input size)") from None
        first = str(error).strip().splitlines()[0]
        raise CnnzooError(f"{name} cannot take {c}x{h}x{w} inputs (try another --resize): "
                          f"{first}") from None
    finally:
        model.train(was_training)


def _resolve(model: str, recipe, overrides: dict) -> Recipe:
    base = recipe if isinstance(recipe, Recipe) else recipe_for(model, recipe)
    return base.replace(**overrides)


def train(model: str, data: str = "fashion-mnist", recipe: str | Recipe = "d2l", *,
          epochs: int | None = None, lr: float | None = None, batch_size: int | None = None,
          resize: int | None = None, device: str = "auto", seed: int = 0,
          out: str | Path | None = None, compile: bool = False, amp: bool = False,
          channels_last: bool = False, cuda_graphs: bool = False, fast: bool = False,
          resume: str | Path | None = None, data_dir: str | None = None,
          train_subset: int | None = None, test_subset: int | None = None,
          model_args: dict | None = None,
          reporter: Reporter | None = None, stop_after_epoch: int | None = None,
          **recipe_overrides) -> TrainResult:
    """Train a registered model and leave a run directory; returns the metrics and timings.

    ``recipe`` is ``"d2l"`` (the textbook's), ``"modern"`` (ours) or a ``Recipe``; ``epochs``,
    ``lr``, ``batch_size``, ``resize`` and any other ``Recipe`` field override single values.
    ``resume`` continues the run in that directory from its last checkpoint with its stored
    configuration (``epochs`` may extend it; ``device`` other than "auto" and ``data_dir``
    replace the run's own). ``compile``, ``amp`` (bf16 autocast) and
    ``channels_last`` (NHWC weights and batches) and ``cuda_graphs`` (each full-size step
    recorded once and replayed, CUDA only) choose the fast path; none changes the recipe.
    ``fast`` chooses ``amp``, ``channels_last`` and ``cuda_graphs`` itself, by timing a few
    steps of each candidate on this device (``train.fastpath``; remembered per machine).
    ``train_subset`` / ``test_subset`` take seeded stratified subsets for quick runs.
    ``model_args`` are further arguments of the model's builder (e.g. ``{"width": 64}``).
    ``stop_after_epoch`` ends the call early after that epoch, as an interruption would (used
    to test resuming). Started by ``torchrun``, every process trains its share of each batch
    with DistributedDataParallel and rank 0 writes.
    """
    wall_start = time.perf_counter()
    if not (isinstance(seed, int) and 0 <= seed < 2 ** 64):
        raise CnnzooError(f"seed must be a whole number from 0 to 2**64 - 1, not {seed!r}")
    ctx = distributed.from_environment()
    reporter = (reporter or Reporter()) if ctx.is_main else Reporter()
    if resume is not None:
        config, state = _load_for_resume(Path(resume), epochs)
        run_dir = Path(resume)
        if device != "auto":  # where it runs and where the files are may change, not what
            config["device"] = device
        if data_dir is not None:
            config["data_dir"] = os.path.abspath(data_dir)
    else:
        cfg_recipe = _resolve(model, recipe, dict(epochs=epochs, lr=lr, batch_size=batch_size,
                                                  resize=resize, **recipe_overrides))
        # the data set as its canonical name, its folder as an absolute path: the run is read
        # back (eval, predict, report) from anywhere
        config = dict(model=model, model_args=dict(model_args or {}), data=canonical_name(data),
                      data_dir=None if data_dir is None else os.path.abspath(data_dir),
                      seed=seed, device=device,
                      compile=compile, amp=amp, channels_last=channels_last,
                      cuda_graphs=cuda_graphs, fast=fast, train_subset=train_subset,
                      test_subset=test_subset, recipe=dataclasses.asdict(cfg_recipe))
        state = None
        run_dir = _check_out(out, model)
    claim_dir = resume is None and out is None  # a dated name that a run begun alongside may take
    # the folder as it was checked, compared again once its lock is held: another process may
    # train in it while this one sets up (a claimed folder is new)
    seen = _progress_files(run_dir) if not claim_dir else (None,) * len(PROGRESS_FILES)
    rec = Recipe(**config["recipe"]).validated()
    distributed.check_batch_size(ctx, rec.batch_size)
    dev = pick_device(config["device"])
    model_info(config["model"])  # an unknown name fails here, before any data is read
    check_model_args(config["model"], config.get("model_args"))
    choose_fast_path = bool(config.get("fast")) and "fast_path" not in config
    if choose_fast_path:
        fastpath.check(config, ctx.world_size)
    if config.get("cuda_graphs"):
        check_graphs(dev, config["compile"], ctx.world_size)
    if dev.type == "cpu":
        allocator.keep_freed_memory()  # reuse activation memory from step to step
    if ctx.is_main:  # matplotlib, for the curves, loads while the data is decompressed
        import_in_background("cnnzoo.plots")

    from ..data import load_dataset

    options = data_options(config)
    train_set = load_dataset(config["data"], split="train", data_dir=config["data_dir"], **options)
    test_set = load_dataset(config["data"], split="test", data_dir=config["data_dir"], **options)
    if config["train_subset"]:
        train_set = train_set.subset(config["train_subset"], seed=config["seed"])
    if config["test_subset"]:
        test_set = test_set.subset(config["test_subset"], seed=config["seed"])

    # the model sees the recipe's resize, or the data at its own size
    input_hw = (rec.resize, rec.resize) if rec.resize else tuple(train_set.image_size[1:])
    config.update(classes=list(train_set.classes), image_size=list(train_set.image_size),
                  input_size=[train_set.image_size[0], *input_hw])

    distributed.check_last_batch(ctx, len(train_set), rec.batch_size)
    distributed.check_test_set(ctx, len(test_set))
    # a crop's offset runs over 0..2 x padding: at a padding of the side or more, the first
    # and last offsets take nothing of the image, and a blank image trains with its label
    if rec.crop_padding >= min(input_hw):
        raise CnnzooError(f"crop padding {rec.crop_padding} is too large for the "
                          f"{input_hw[0]}x{input_hw[1]} input: a crop could miss the image "
                          f"entirely; use at most {min(input_hw) - 1} (4 is usual for 32x32)")
    torch.manual_seed(config["seed"])
    net = build_model(config)
    if rec.init == "xavier":
        xavier_init(net)
    _check_input(net, config["model"], config["input_size"])
    if choose_fast_path:  # its random numbers are its own: the run is that of the flags it picks
        choice = fastpath.choose(config, rec, dev, batch_size=min(rec.batch_size, len(train_set)),
                                 on_measure=reporter.note)
        config.update(vars(choice.flags), fast_path=choice.record())
    dev = distributed.setup(ctx, dev)
    if ctx.enabled and dev.type == "cuda":  # BatchNorm over the global batch, not each slice
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)  # (torch has it for GPUs only)
    try:
        net.to(dev, memory_format=memory_format(config.get("channels_last", False)))
        optimizer = make_optimizer(rec, net, dev, graph=config.get("cuda_graphs", False))
        train_set, test_set = train_set.to(dev), test_set.to(dev)
        if rec.normalize and "normalize_stats" not in config:
            # exact (integer sums), so the same on every device; quickest where the data is now
            config["normalize_stats"] = [v.tolist() for v in train_set.mean_std()]
        stats = config.get("normalize_stats")
        train_batches = _batches(train_set, rec, input_hw, True, config["seed"], stats)
        test_batches = _batches(test_set, rec, input_hw, False, config["seed"], stats)
        total_steps = rec.epochs * len(train_batches)
        scheduler = Schedule(optimizer, rec, total_steps)
        history, start_epoch = [], 1
        if state is not None:
            net.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng_cpu"])
            if dev.type == "cuda" and "rng_cuda" in state:
                torch.cuda.set_rng_state(state["rng_cuda"], dev)
            start_epoch = state["epoch"] + 1
            history = read_metrics(run_dir)[: state["epoch"]]
        config.update(device_used=str(dev), torch=torch.__version__, cnnzoo=__version__,
                      python=platform.python_version(), threads=torch.get_num_threads(),
                      world_size=ctx.world_size)
        config.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))

        eager_net = net
        if ctx.enabled:
            eager_net = nn.parallel.DistributedDataParallel(
                net, device_ids=[dev.index] if dev.type == "cuda" else None)
        step_net = torch.compile(eager_net) if config["compile"] else eager_net
        fit = _Fit(step_net, eager_net, net, optimizer, scheduler, rec, dev, config, ctx,
                   reporter, nn.CrossEntropyLoss(label_smoothing=rec.label_smoothing))
        if ctx.is_main:  # the folder is made once the set-up has succeeded
            run_dir = _claim_new_dir(run_dir) if claim_dir else _make_dir(run_dir)
        run_dir = Path(distributed.broadcast(ctx, str(run_dir)))
        lock = RunLock(run_dir) if ctx.is_main else contextlib.nullcontext()
        with lock:
            if ctx.is_main:
                if _progress_files(run_dir) != seen:
                    raise CnnzooError(f"another cnnzoo process trained in {run_dir} while this "
                                      f"one set up; nothing was written; run the command again")
                write_json(run_dir / CONFIG, config)
                # a finished run trained further: its final weights no longer describe it, and
                # eval, predict and export would read them before the checkpoint; the
                # checkpoint holds the same weights until the run finishes again
                (run_dir / WEIGHTS).unlink(missing_ok=True)
            reporter.start(dict(config, run_dir=str(run_dir), start_epoch=start_epoch,
                                parameters=sum(p.numel() for p in net.parameters())))
            setup_seconds = time.perf_counter() - wall_start
            finished = fit.run(train_batches, test_batches, len(test_set), run_dir, history,
                               start_epoch, stop_after_epoch)
            if finished and ctx.is_main:
                with fit.timed("save_seconds"):
                    save_weights(run_dir / WEIGHTS, net)
        distributed.barrier(ctx)
    finally:
        distributed.teardown(ctx)
    return TrainResult(run_dir, config["model"], str(dev), history,
                       wall_seconds=time.perf_counter() - wall_start,
                       train_seconds=fit.train_seconds,
                       examples_per_sec=per_second(fit.timed_examples, fit.train_seconds),
                       warmup_seconds=fit.warmup_seconds, setup_seconds=setup_seconds,
                       eval_seconds=fit.eval_seconds, save_seconds=fit.save_seconds,
                       config=config, rank=ctx.rank)


class _Fit:
    """The epochs of one run: train, check, evaluate, save. Holds the timing totals."""

    def __init__(self, step_net, eager_net, net, optimizer, scheduler, rec, dev, config, ctx,
                 reporter, criterion):
        # step_net: compiled when asked for, it takes the full-size training batches; eager_net
        # (the same weights) takes a short last batch and evaluation, which would otherwise
        # cost a compilation each for their shapes; net: the bare model, for saving.
        self.eager_net, self.net = eager_net, net
        self.optimizer, self.scheduler = optimizer, scheduler
        self.rec, self.dev, self.config, self.ctx, self.reporter = rec, dev, config, ctx, reporter
        self.amp = config["amp"]
        self.channels_last = config.get("channels_last", False)  # absent in older runs
        self.step = TrainStep(step_net, eager_net, optimizer, criterion,
                              batch_size=rec.batch_size // ctx.world_size, device=dev,
                              amp=self.amp, channels_last=self.channels_last,
                              grad_clip=rec.grad_clip, scheduler=scheduler,
                              graph=config.get("cuda_graphs", False))
        self.train_seconds = self.warmup_seconds = 0.0
        self.eval_seconds = self.save_seconds = 0.0
        self.timed_examples = 0

    @contextlib.contextmanager
    def timed(self, total: str):
        """Add the block's wall time to the named total (its device work is read back
        inside it, so the time is its own)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, total, getattr(self, total) + time.perf_counter() - start)

    def run(self, train_batches, test_batches, test_count, run_dir, history, start_epoch,
            stop_after_epoch) -> bool:
        """Train from ``start_epoch``; True when the last epoch was reached."""
        rec, num_classes = self.rec, len(self.config["classes"])
        plotted_at = time.perf_counter()
        # compilation, or the recording of the CUDA graph, is timed apart from the steps: the
        # first steps of every process (a resumed run compiles anew), in as many epochs as
        # they take
        warmup_left = (3 if self.config["compile"] else
                       GRAPH_WARMUP_STEPS + 1 if self.config.get("cuda_graphs") else 0)
        for epoch in range(start_epoch, rec.epochs + 1):
            train_batches.set_epoch(epoch)
            self.reporter.epoch_start(epoch, rec.epochs, len(train_batches))
            sums, timing = self._train_epoch(train_batches, warmup_left)
            warmup_left = max(0, warmup_left - timing["steps"])
            loss_sum, correct, seen = distributed.all_reduce_sum(self.ctx, sums).tolist()
            row = dict(epoch=epoch, train_loss=loss_sum / max(seen, 1),
                       train_acc=correct / max(seen, 1))
            self.train_seconds += timing["seconds"]
            self.warmup_seconds += timing["warmup_seconds"]
            examples = timing["examples"]
            self.timed_examples += examples
            if not math.isfinite(row["train_loss"]) or row["train_loss"] > DIVERGED_LOSS:
                kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else \
                    "no checkpoint was written"
                raise TrainingDiverged(
                    f"loss became {row['train_loss']:.3g} in epoch {epoch} (lr {rec.lr:g}); "
                    f"{kept}; try a lower learning rate, e.g. --lr {rec.lr / 10:g}")
            with self.timed("eval_seconds"):
                confusion = evaluate_batches(self.eager_net, _shard(self.ctx, test_batches),
                                             num_classes, self.amp, self.channels_last,
                                             flip=rec.eval_flip)
                correct_test = distributed.all_reduce_sum(self.ctx, confusion.diagonal().sum())
                correct_test = correct_test.item()
            row.update(test_acc=correct_test / test_count,
                       seconds=timing["seconds"] + timing["warmup_seconds"],
                       examples_per_sec=per_second(examples, timing["seconds"]))
            history.append(row)
            stopping = stop_after_epoch is not None and stop_after_epoch <= epoch < rec.epochs
            if self.ctx.is_main:
                with self.timed("save_seconds"):
                    _save_epoch(run_dir, self.net, self.optimizer, self.scheduler, epoch,
                                self.dev, history)
                    if (epoch == rec.epochs or stopping
                            or time.perf_counter() - plotted_at >= PLOT_EVERY_SECONDS):
                        from ..plots import plot_curves

                        plot_curves(history, run_dir / CURVES,
                                    title=f"{self.config['model']} on {self.config['data']}")
                        plotted_at = time.perf_counter()
            self.reporter.epoch_end(row)
            warning = chance_warning(history, num_classes, rec.lr, rec.epochs)
            if warning and self.ctx.is_main:
                self.reporter.warn(warning)
            if stopping:
                return False
        return True

    def _train_epoch(self, batches, warmup_steps: int):
        """One epoch of steps on this rank's slices of the global ``batches``; returns (loss
        sum, correct, examples) of the slices as one device tensor (summed on the device, read
        once per epoch) and the timing, whose examples are the global batches'. The first
        ``warmup_steps`` steps are timed apart; an epoch with no more steps than that is all
        warm-up, and times no step."""
        dev, step = self.dev, self.step
        self.eager_net.train()
        step.begin()
        steps = timed = 0
        warmup_seconds = 0.0
        synchronize(dev)
        start = time.perf_counter()
        for x, y in batches:
            size = len(y)
            x, y = _slice(self.ctx, x, y)
            if steps == warmup_steps and warmup_steps:
                synchronize(dev)
                warmup_seconds = time.perf_counter() - start
                start, timed = time.perf_counter(), 0
            # DistributedDataParallel averages the ranks' gradients alike: a slice of a short
            # last batch that is a larger or smaller share of it weighs its mean loss by that
            step(x, y, weight=len(y) * self.ctx.world_size / size)
            steps += 1
            timed += size
            self.reporter.step()
        synchronize(dev)
        seconds = time.perf_counter() - start
        if steps <= warmup_steps:
            warmup_seconds, seconds, timed = seconds, 0.0, 0
        return step.totals(), dict(seconds=seconds, warmup_seconds=warmup_seconds,
                                   examples=timed, steps=steps)


def per_second(examples: int, seconds: float) -> float:
    """Examples per second of timed steps; NaN (shown as "—") when no step was timed, as when
    every step of a short run was compile or graph-recording warm-up."""
    return examples / max(seconds, 1e-9) if examples else float("nan")


def _shard(ctx: distributed.Context, batches):
    """This rank's slice of every (global) batch; the batches themselves in one process.

    Every rank draws the same permutation and augmentation, so the slices of one global batch
    together are exactly the batch a single process would train on.
    """
    for x, y in batches:
        x, y = _slice(ctx, x, y)
        if len(y):
            yield x, y


def _slice(ctx: distributed.Context, x: torch.Tensor, y: torch.Tensor):
    """This rank's slice of one global batch: the first ``len(y) % world_size`` ranks take one
    image more than the others; the whole batch in one process."""
    if not ctx.enabled:
        return x, y
    return x.tensor_split(ctx.world_size)[ctx.rank], y.tensor_split(ctx.world_size)[ctx.rank]


def _save_epoch(run_dir: Path, net, optimizer, scheduler, epoch: int, dev, history):
    state = dict(model=net.state_dict(), optimizer=optimizer.state_dict(),
                 scheduler=scheduler.state_dict(), epoch=epoch, rng_cpu=torch.get_rng_state())
    if dev.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(dev)
    # metrics first: a checkpoint never claims an epoch whose row is missing
    write_metrics(run_dir, history)
    save_checkpoint(run_dir / CHECKPOINT, state)


PROGRESS_FILES = (METRICS, CHECKPOINT, WEIGHTS)


def _progress_files(run_dir: Path) -> tuple:
    """The identity (inode, modification time) of each file that records a run's progress, None
    for one that is absent: a new one written in place of the old changes it."""
    identities = []
    for name in PROGRESS_FILES:
        try:
            stat = (run_dir / name).stat()
        except OSError:
            identities.append(None)
        else:
            identities.append((stat.st_ino, stat.st_mtime_ns))
    return tuple(identities)


def _check_out(out, model: str) -> Path:
    """The run directory to use: ``out``, or a new dated one. ``out`` may be a new or empty
    folder, or one whose run ended before its first epoch (a config.json and nothing of worth);
    not a run with finished epochs, nor a folder of other files."""
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path("runs") / f"{model}-{stamp}"
    if str(out).strip() == "":
        raise CnnzooError("--out is empty; name a folder for the run")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CnnzooError(f"--out {out} exists and is not a directory")
    if holds_run(out):
        raise CnnzooError(f"{out} already holds a run; continue it with --resume {out} "
                          f"or choose another --out")
    others = sorted(p.name for p in out.iterdir() if not is_run_file(p.name)) \
        if out.is_dir() else []
    if others:
        raise CnnzooError(f"--out {out} is a folder of other files ({', '.join(others[:3])}"
                          f"{', ...' if len(others) > 3 else ''}); give a new or empty folder")
    return out


def _claim_new_dir(folder: Path) -> Path:
    """Create ``folder``, or ``folder-2``, ``folder-3``, ... when runs begun in the same second
    took the name: ``mkdir`` is atomic, so two runs never share a folder."""
    for number in range(1, 1000):
        candidate = folder if number == 1 else folder.with_name(f"{folder.name}-{number}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as error:
            raise CnnzooError(f"cannot create {candidate}: {error.strerror}") from None
        return candidate
    raise CnnzooError(f"cannot create a new run folder beside {folder}: 999 are taken")


def _make_dir(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CnnzooError(f"cannot create {folder}: {error.strerror}") from None
    return folder


def _load_for_resume(run_dir: Path, epochs: int | None):
    if not (run_dir / CONFIG).exists():
        raise CnnzooError(f"cannot resume {run_dir}: no {CONFIG} there")
    config = read_config(run_dir)
    if epochs is not None:
        if epochs < 1:
            raise CnnzooError(f"epochs must be at least 1, not {epochs}")
        config["recipe"]["epochs"] = epochs
    if not (run_dir / CHECKPOINT).exists():
        # metrics.csv is written just before each checkpoint: one row without a checkpoint is a
        # run killed while writing its first; more, or the final weights, mean it was removed
        finished = len(read_metrics(run_dir))
        if finished > 1 or (run_dir / WEIGHTS).exists():
            done = f"{METRICS} records {finished} finished epochs" if finished else \
                f"it holds the trained weights ({WEIGHTS})"
            raise CnnzooError(f"cannot resume {run_dir}: its {CHECKPOINT} is missing but {done}; "
                              f"restore the checkpoint, or train anew with another --out")
        # killed before the first epoch ended: start again from scratch in the same directory
        return config, None
    state = load_checkpoint(run_dir / CHECKPOINT)
    if state["epoch"] >= config["recipe"]["epochs"] and (run_dir / WEIGHTS).exists():
        raise CnnzooError(f"{run_dir} already finished {state['epoch']} "
                          f"epoch{'s' * (state['epoch'] != 1)}; pass --epochs "
                          f"N with N > {state['epoch']} to train further")
    return config, state
