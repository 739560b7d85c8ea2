"""The training loop: data on the device, metrics summed on the device, one read per epoch.

``train(model, data, recipe, ...)`` reads top to bottom: the run's configuration, resolved and
validated (``config``); its preparation, data, model, device and fast path (``prepare``); then
the epochs (``_Fit``), each followed by an evaluation and a checkpoint in the run directory
(``rundir``). Progress goes to a ``Reporter`` (``progress``): a bar and a line per epoch in a
terminal or a notebook, the curves drawn live in a notebook, silence with ``progress=False``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .._html import html_table
from .._io import write_json
from ..data.catalog import IN_MEMORY, IN_MEMORY_ONLY
from ..device import synchronize
from ..errors import CnnzooError, out_of_memory_as
from ..geometry import whole_number
from . import distributed
from .checkpoint import save_weights, saved_epoch
from .config import RUN_PARAMETERS, data_sets, for_resume, new_run
from .evaluation import evaluate_batches
from .pooling import use_plain_pooling
from .prepare import prepare
from .progress import Reporter, epoch_table, rate_text, reporter_for
from .rundir import (BEST, CONFIG, CURVES, EVENTS, PROGRESS_FILES, WEIGHTS, RunLock,
                     accuracy_text, check_out, claim_new_dir, config_to_resume, eval_acc,
                     load_for_resume, make_dir, progress_files, save_epoch)
from .step import GRAPH_WARMUP_STEPS, TrainStep


class TrainingDiverged(CnnzooError):
    """The loss became NaN/inf or exploded; the last good checkpoint is kept."""


@dataclass(repr=False)
class TrainResult:
    """What ``train`` leaves: the trained model, the epochs' metrics, the run directory and
    where the time went. ``final`` is the last epoch's row."""

    run_dir: Path
    model: nn.Module               # the trained network (the user's own module, where given)
    model_name: str
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

    @property
    def target(self) -> dict | None:
        """Where the run reached its ``target_acc``: ``{"epoch", "accuracy", "seconds"}``,
        the seconds MLPerf's time to train (from the first step, evaluations included); None
        without a target or short of it."""
        return target_reached(self.history, self.config.get("target_acc"))

    def __repr__(self) -> str:
        final = self.final
        return (f"TrainResult({self.model_name} on {self.config.get('data', '?')}, "
                f"{final['epoch']} epoch{'s' * (final['epoch'] != 1)}: loss "
                f"{final['train_loss']:.3f}, train acc {final['train_acc']:.3f}, "
                f"{accuracy_text(final)}; {rate_text(self.examples_per_sec)} examples/s on "
                f"{self.device}, {self.wall_seconds:.1f} s; run_dir={str(self.run_dir)!r})")

    def _repr_html_(self) -> str:
        header, rows = epoch_table(self.history)
        caption = (f"{self.model_name} on {self.config.get('data', '?')}: "
                   f"{self.wall_seconds:.1f} s in all, run directory {self.run_dir}")
        return html_table(header, rows, numeric=range(len(header)), caption=caption,
                          inline=True)


def target_reached(history: list[dict], target: float | None) -> dict | None:
    """The first epoch of ``history`` whose evaluation reached ``target``, with its accuracy
    and the seconds from the first step to the end of that evaluation; None if none did."""
    if target is None:
        return None
    for row in history:
        accuracy = eval_acc(row)
        if accuracy is not None and accuracy >= target:
            return dict(epoch=row["epoch"], accuracy=accuracy, seconds=row.get("elapsed"))
    return None


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
                f"with another learning rate (this run's: lr={lr:g})")
    if streak == STUCK_EPOCHS:
        return (f"still at chance after {streak} epochs, {at}: the model is not learning; "
                f"lr {lr:g} may be too high or too low (interrupt it, then e.g. lr={lr / 10:g})")
    return None


def train(model=None, data=None, recipe=None, *, epochs: int | None = None,
          lr: float | None = None, batch_size: int | None = None, resize: int | None = None,
          device: str | None = None, seed: int | None = None, out=None, compile: bool = False,
          amp: bool = False, channels_last: bool = False, cuda_graphs: bool = False,
          fast: bool = False, resume=None, data_dir=None, train_subset: int | None = None,
          test_subset: int | None = None, val: int | float | None = None,
          target_acc: float | None = None, deterministic: bool = False,
          tensorboard: bool = False, model_args: dict | None = None,
          progress: bool | None = None, curves: bool | None = None,
          reporter: Reporter | None = None, stop_after_epoch: int | None = None,
          **recipe_overrides) -> TrainResult:
    """Train a model and leave a run directory; returns the trained model, its metrics and
    where the time went (``TrainResult``).

    ``model`` is a registered name (``"lenet5_d2l"``, the default), an ``nn.Module`` of your
    own (trained in place: ``result.model`` is that module) or a function that builds one
    (called with ``num_classes`` and ``in_channels`` where it takes them, and ``model_args``).
    ``data`` is a data set's name (``"fashion-mnist"``, the default; ``data_dir`` says where
    its files are) or the training and test sets, ``(train, test)``, each a ``DataSet`` or
    ``(images, labels)`` tensors or arrays (images uint8 or floats in [0, 1], (N, C, H, W) or
    (N, H, W)). A model that cannot take the data (its channels or class count) is refused
    before training.

    ``recipe`` is ``"d2l"`` (the textbook's, the default), ``"modern"`` (cnnzoo's), ``"best"``
    or a ``Recipe``; ``epochs``, ``lr``, ``batch_size``, ``resize`` and any other ``Recipe``
    field as a keyword (``weight_decay=5e-4``) override single values. ``compile``, ``amp``
    (bf16 autocast), ``channels_last`` and ``cuda_graphs`` (CUDA only) choose how the steps
    run, never what they compute; ``fast`` chooses them by timing each candidate here.
    ``train_subset`` / ``test_subset`` take seeded stratified subsets for quick runs.

    ``val`` holds that many training images out (or that fraction of them), stratified and
    the same in every run, for validation: each epoch is then evaluated on them, the weights
    of the best epoch are kept (``best.safetensors``) and the test set is evaluated once, at
    the end. By default Fashion-MNIST, MNIST and CIFAR-10 hold out 5,000, but for the
    textbook's recipe, which keeps the book's protocol (``val=0``: the whole training split,
    the test set after every epoch). ``target_acc`` ends the run after the first epoch whose
    evaluation reaches it (``result.target``: the epoch and MLPerf's time to train).
    ``deterministic`` computes with torch's deterministic algorithms only (docs/training.md
    says what is reproducible); ``tensorboard`` writes TensorBoard event files into the run
    directory's ``events/`` (the ``tensorboard`` package, ``cnnzoo[tensorboard]``).

    ``resume`` continues the run in that directory from its last checkpoint as it was set up:
    only ``epochs`` (to extend it), ``device`` and ``data_dir`` may be given beside it, and the
    model and data again where the run was of your own model or data.

    ``progress``: a bar and a line per epoch (a notebook bar in Jupyter); ``False`` is silent.
    ``curves``: the curves drawn inline in a notebook and redrawn each epoch (on there by
    default). ``reporter`` receives every event instead of the default progress. Each
    parameter that is wrong is one ``CnnzooError`` line naming it, before any work.
    ``stop_after_epoch`` ends the call after that epoch, as an interruption would (for tests of
    resuming). Started by ``torchrun``, every process trains its share of each batch with
    DistributedDataParallel and rank 0 writes.
    """
    wall_start = time.perf_counter()
    ctx = distributed.from_environment()
    reporter = reporter_for(progress, curves, reporter) if ctx.is_main else Reporter()
    try:
        config, state, run_dir, sets = _configure(
            model, data, recipe, resume, out,
            dict(epochs=epochs, lr=lr, batch_size=batch_size, resize=resize, device=device,
                 seed=seed, compile=compile, amp=amp, channels_last=channels_last,
                 cuda_graphs=cuda_graphs, fast=fast, data_dir=data_dir,
                 train_subset=train_subset, test_subset=test_subset, val=val,
                 target_acc=target_acc, deterministic=deterministic,
                 tensorboard=tensorboard, model_args=model_args),
            recipe_overrides)
        user_model = None if isinstance(model, str) else model
        if stop_after_epoch is not None and not (whole_number(stop_after_epoch)
                                                 and stop_after_epoch >= 1):
            raise CnnzooError(f"stop_after_epoch={stop_after_epoch!r}: give an epoch (1 or more)")
        if config.get("tensorboard") and ctx.is_main:
            from .events import check_available

            check_available()
        from .determinism import deterministic as deterministic_algorithms

        with deterministic_algorithms(config.get("deterministic", False)):
            return _run(config, state, run_dir, ctx, reporter, user_model, sets,
                        resume is None and out is None, stop_after_epoch, wall_start)
    finally:
        reporter.close()
        distributed.teardown(ctx)


def run_config(model=None, data=None, recipe=None, *, resume=None, out=None,
               **kwargs) -> dict:
    """The configuration ``train`` would record for the same arguments, resolved and checked,
    without training: a run's ``config.json`` before its data is read (what ``cnnzoo train
    --print-config`` shows). ``kwargs`` are ``train``'s parameters of a new run and recipe
    fields; with ``resume``, the resumed run's, checked as ``train`` checks them."""
    given = {name: kwargs.pop(name, None) for name in RUN_PARAMETERS}
    if resume is not None:
        return _configure(model, data, recipe, resume, out, given, kwargs)[0]
    return new_run(model, data, recipe, given, kwargs)[0].record()


def _configure(model, data, recipe, resume, out, given: dict, overrides: dict):
    """The run's record (its ``config.json``), the checkpoint it resumes from (or None), its
    folder, and the data sets given from Python (or None): everything checked, nothing done."""
    if resume is not None:
        if not isinstance(resume, (str, os.PathLike)) or str(resume).strip() == "":
            raise CnnzooError(f"resume={resume!r}: give the folder of the run to continue")
        run_dir = Path(resume)
        from .config import check_parameters

        check_parameters(epochs=given["epochs"], device=given["device"],
                         data_dir=given["data_dir"])
        config = config_to_resume(run_dir)
        from ..data import canonical_name

        # the run's own data set and recipe named again are no conflict
        if isinstance(data, str) and canonical_name(data) == config["data"] or \
                config["data"] == IN_MEMORY:
            data_given = None
        else:
            data_given = data
        if recipe == config["recipe"].get("name"):
            recipe = None
        if given["seed"] is not None and given["seed"] == config.get("seed"):
            given = dict(given, seed=None)
        for_resume(run_dir, config, model, dict(given, data=data_given, recipe=recipe,
                                                out=out, **overrides))
        state = load_for_resume(run_dir, config, given["epochs"])
        if given["device"] not in (None, "auto"):  # where it runs and its files may change
            config["device"] = given["device"]
        if given["data_dir"] is not None:
            config["data_dir"] = os.path.abspath(given["data_dir"])
        sets = None
        if config["data"] == IN_MEMORY:
            if data is None or isinstance(data, str):
                raise CnnzooError(f"{run_dir}: {IN_MEMORY_ONLY}")
            _, sets = data_sets(data)
        return config, state, run_dir, sets
    run, sets = new_run(model, data, recipe, given, overrides)
    return run.record(), None, check_out(out, run.model), sets


def _run(config, state, run_dir, ctx, reporter, user_model, sets, claim_dir: bool,
         stop_after_epoch, wall_start) -> TrainResult:
    """Prepare the run, claim and lock its folder, train its epochs and save its weights."""
    # the folder as it was checked, compared again once its lock is held: another process may
    # train in it while this one sets up (a dated folder is claimed new)
    seen = progress_files(run_dir) if not claim_dir else (None,) * len(PROGRESS_FILES)
    with out_of_memory_as(f"setting up the run of {config['model']} does not fit in memory "
                          f"(its data set, or the model at the input size); give a smaller "
                          f"resize= or train_subset="):
        prep = prepare(config, state, ctx, reporter, model=user_model, data=sets,
                       run_dir=run_dir)
    net, dev = prep.net, prep.device
    eager_net = net
    if ctx.enabled:
        eager_net = nn.parallel.DistributedDataParallel(
            net, device_ids=[dev.index] if dev.type == "cuda" else None)
    step_net = torch.compile(eager_net) if config["compile"] else eager_net
    fit = _Fit(step_net, eager_net, net, prep.optimizer, prep.scheduler, prep.recipe, dev,
               config, ctx, reporter,
               nn.CrossEntropyLoss(label_smoothing=prep.recipe.label_smoothing))
    if ctx.is_main:  # the folder is made once the set-up has succeeded
        run_dir = claim_new_dir(run_dir) if claim_dir else make_dir(run_dir)
    run_dir = Path(distributed.broadcast(ctx, str(run_dir)))
    history = prep.history
    try:
        with RunLock(run_dir) if ctx.is_main else contextlib.nullcontext():
            if ctx.is_main:
                if progress_files(run_dir) != seen:
                    raise CnnzooError(f"another cnnzoo process trained in {run_dir} while this "
                                      f"one set up; nothing was written; run it again")
                write_json(run_dir / CONFIG, config)
                if config.get("tensorboard"):
                    from .events import EventLog

                    fit.events = EventLog(run_dir / EVENTS, prep.scheduler.steps)
                # a finished run trained further: its final weights no longer describe it, and
                # eval, predict and export would read them before the checkpoint; the
                # checkpoint holds the same weights until the run finishes again
                (run_dir / WEIGHTS).unlink(missing_ok=True)
            reporter.start(dict(config, run_dir=str(run_dir), start_epoch=prep.start_epoch,
                                parameters=sum(p.numel() for p in net.parameters()),
                                history=list(history)))
            setup_seconds = time.perf_counter() - wall_start
            size = "x".join(map(str, config["input_size"]))
            with out_of_memory_as(f"training {config['model']} at batch_size="
                                  f"{prep.recipe.batch_size} on {size} inputs does not fit in "
                                  f"{dev.type} memory; give a smaller batch_size= (or "
                                  f"resize=); whatever epochs finished are kept in {run_dir}"):
                finished = fit.run(prep, run_dir, history, stop_after_epoch)
            if finished and ctx.is_main:
                with fit.timed("save_seconds"):
                    save_weights(run_dir / WEIGHTS, net)
                    if fit.events is not None:
                        fit.events.end(history, config, fit.confusion, net,
                                       torch.zeros(1, *config["input_size"], device=dev))
        distributed.barrier(ctx)
    finally:
        if fit.events is not None:
            fit.events.close()
        # the model handed back has torch's own pooling layers (traced, scripted and shown
        # as any other model), and the user's module the classes it came with
        use_plain_pooling(net)
    result = TrainResult(run_dir, net, config["model"], str(dev), history,
                         wall_seconds=time.perf_counter() - wall_start,
                         train_seconds=fit.train_seconds,
                         examples_per_sec=per_second(fit.timed_examples, fit.train_seconds),
                         warmup_seconds=fit.warmup_seconds, setup_seconds=setup_seconds,
                         eval_seconds=fit.eval_seconds, save_seconds=fit.save_seconds,
                         config=config, rank=ctx.rank)
    if finished:
        reporter.end(result)
    return result


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
        self.channels_last = config.get("channels_last", False)  # a record may lack it
        self.step = TrainStep(step_net, eager_net, optimizer, criterion,
                              batch_size=rec.batch_size // ctx.world_size, device=dev,
                              amp=self.amp, channels_last=self.channels_last,
                              grad_clip=rec.grad_clip, scheduler=scheduler,
                              graph=config.get("cuda_graphs", False))
        self.train_seconds = self.warmup_seconds = 0.0
        self.eval_seconds = self.save_seconds = 0.0
        self.timed_examples = 0
        self.events = None     # the EventLog of a run with tensorboard=True (rank 0)
        self.confusion = None  # of the last evaluation, on the device

    @contextlib.contextmanager
    def timed(self, total: str):
        """Add the block's wall time to the named total (its device work is read back
        inside it, so the time is its own)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, total, getattr(self, total) + time.perf_counter() - start)

    def run(self, prep, run_dir, history, stop_after_epoch) -> bool:
        """Train from ``prep.start_epoch``; True when the run finished: its last epoch, or
        the first to reach ``target_acc``."""
        rec, num_classes = self.rec, len(self.config["classes"])
        train_batches = prep.train_batches
        # each epoch is judged on the validation hold-out, or on the test set without one;
        # with one, the test set is evaluated once, after the last epoch
        judged = (prep.val_batches, prep.val_count) if prep.val_batches is not None else \
            (prep.test_batches, prep.test_count)
        target = self.config.get("target_acc")
        plotted_at = time.perf_counter()
        best_row = max((row for row in history if row.get("val_acc") is not None),
                       key=lambda row: row["val_acc"], default=None)
        best = best_row["val_acc"] if best_row is not None else -1.0
        # the best epoch's weights are written after its checkpoint: a run stopped between
        # the two resumes with the best epoch checkpointed and its weights in hand
        if (self.ctx.is_main and best_row is not None and best_row is history[-1]
                and saved_epoch(run_dir / BEST) != best_row["epoch"]):
            save_weights(run_dir / BEST, self.net, epoch=best_row["epoch"])
        # the clock of MLPerf's time to train: from the first step, through every evaluation,
        # to the end of the evaluation that reaches the target (a resumed run goes on from the
        # time its last epoch recorded)
        clock = time.perf_counter() - ((history[-1].get("elapsed") or 0.0) if history else 0.0)
        # compilation, or the recording of the CUDA graph, is timed apart from the steps: the
        # first steps of every process (a resumed run compiles anew), in as many epochs as
        # they take
        warmup_left = (3 if self.config["compile"] else
                       GRAPH_WARMUP_STEPS + 1 if self.config.get("cuda_graphs") else 0)
        if target_reached(history, target) is not None:
            # a run stopped between its last checkpoint and its final weights: finished
            return True
        for epoch in range(prep.start_epoch, rec.epochs + 1):
            train_batches.set_epoch(epoch)
            self.reporter.epoch_start(epoch, rec.epochs, len(train_batches))
            first_step = self.scheduler.steps
            sums, timing = self._train_epoch(train_batches, warmup_left)
            warmup_left = max(0, warmup_left - timing["steps"])
            loss_sum, correct, seen, norm_sum = distributed.all_reduce_sum(self.ctx,
                                                                           sums).tolist()
            steps = max(timing["steps"], 1)
            row = dict(epoch=epoch, train_loss=loss_sum / max(seen, 1),
                       train_acc=correct / max(seen, 1), val_acc=None, test_acc=None,
                       lr=self.scheduler.lr_at(max(self.scheduler.steps - 1, 0)),
                       # every rank holds the same averaged gradients: their norms, summed,
                       # are world_size times one
                       grad_norm=norm_sum / steps / self.ctx.world_size)
            self.train_seconds += timing["seconds"]
            self.warmup_seconds += timing["warmup_seconds"]
            examples = timing["examples"]
            self.timed_examples += examples
            if not math.isfinite(row["train_loss"]) or row["train_loss"] > DIVERGED_LOSS:
                kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else \
                    "no checkpoint was written"
                raise TrainingDiverged(
                    f"loss became {row['train_loss']:.3g} in epoch {epoch} (lr {rec.lr:g}); "
                    f"{kept}; try a lower learning rate, e.g. lr={rec.lr / 10:g}")
            with self.timed("eval_seconds"):
                accuracy = self._accuracy(*judged)
            row["val_acc" if prep.val_batches is not None else "test_acc"] = accuracy
            row["elapsed"] = time.perf_counter() - clock
            reached = target is not None and accuracy >= target
            last = epoch == rec.epochs or reached
            if last and prep.val_batches is not None:
                with self.timed("eval_seconds"):
                    row["test_acc"] = self._accuracy(prep.test_batches, prep.test_count)
            row.update(seconds=timing["seconds"] + timing["warmup_seconds"],
                       examples_per_sec=per_second(examples, timing["seconds"]))
            history.append(row)
            stopping = stop_after_epoch is not None and stop_after_epoch <= epoch and not last
            if self.ctx.is_main:
                with self.timed("save_seconds"):
                    save_epoch(run_dir, self.net, self.optimizer, self.scheduler, epoch,
                               self.dev, history)
                    if row["val_acc"] is not None and row["val_acc"] > best:
                        best = row["val_acc"]
                        save_weights(run_dir / BEST, self.net, epoch=epoch)
                    if self.events is not None:
                        self.events.steps(first_step, torch.stack(self.step.losses).tolist(),
                                          [self.scheduler.lr_at(step) for step in
                                           range(first_step, self.scheduler.steps)])
                        self.events.epoch(row)
                    if (last or stopping
                            or time.perf_counter() - plotted_at >= PLOT_EVERY_SECONDS):
                        from ..plots import plot_curves

                        plot_curves(history, run_dir / CURVES,
                                    title=f"{self.config['model']} on {self.config['data']}")
                        plotted_at = time.perf_counter()
            self.reporter.epoch_end(row)
            if reached:
                return True
            warning = chance_warning(history, num_classes, rec.lr, rec.epochs)
            if warning and self.ctx.is_main:
                self.reporter.warn(warning)
            if stopping:
                return False
        return True

    def _accuracy(self, batches, count: int) -> float:
        """The model's accuracy over ``batches`` of ``count`` images, the ranks' shares
        summed; the confusion matrix is kept (``self.confusion``) for the event log."""
        confusion = evaluate_batches(self.eager_net, _shard(self.ctx, batches),
                                     len(self.config["classes"]), self.amp,
                                     self.channels_last, flip=self.rec.eval_flip)
        self.confusion = distributed.all_reduce_sum(self.ctx, confusion)
        return self.confusion.diagonal().sum().item() / count

    def _train_epoch(self, batches, warmup_steps: int):
        """One epoch of steps on this rank's slices of the global ``batches``; returns (loss
        sum, correct, examples, gradient-norm sum) of the slices as one device tensor (summed on the device, read
        once per epoch) and the timing, whose examples are the global batches'. The first
        ``warmup_steps`` steps are timed apart; an epoch with no more steps than that is all
        warm-up, and times no step."""
        dev, step = self.dev, self.step
        self.eager_net.train()
        step.begin()
        step.losses = [] if self.events is not None else None
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


