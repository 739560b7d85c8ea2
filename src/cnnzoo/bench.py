"""Speed measurements: cnnzoo's training step against the textbook's way, side by side.

``bench_model`` times training steps of one model two ways in the same process:

- ours: the data set on the device, batches sliced from a permutation and resized as one tensor
  op, no host synchronisation inside the timed steps, freed memory kept in the process on the
  CPU (``training.allocator``); optionally compiled, bf16 autocast, channels-last;
- the textbook's (``baseline=True``): a ``torch.utils.data.DataLoader`` over per-sample PIL
  resize + to-tensor transforms with 4 worker processes and a host sync every step for the
  running metrics, as d2l's ``load_data_fashion_mnist`` and ``train_ch6`` do; eager, fp32, and
  timed first, while the process still has the allocator Python starts with.

Throughput counts training examples per second over steps after a warm-up, synchronised at both
ends. Achieved FLOP/s use the model's forward FLOPs (2 x mult-adds) x 3 for forward + backward,
as a fraction of a matrix-product peak measured on the same device.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__
from .errors import CnnzooError, out_of_memory_as
from .device import synchronize
from .training.step import GRAPH_WARMUP_STEPS, TrainStep, check_graphs

TEXTBOOK_WORKERS = 4  # d2l's get_dataloader_workers()


@dataclass
class BenchResult:
    model: str
    device: str
    batch_size: int
    input_size: list[int]
    steps: int
    examples_per_sec: float
    step_ms: float
    epoch_seconds: float               # one pass over the training set at this throughput
    warmup_seconds: float              # first steps (compile, caches), not counted above
    forward_flops: float               # per example
    achieved_tflops: float
    peak_tflops: float
    fraction_of_peak: float
    data: str = "synthetic"            # the data set timed on, by its canonical name
    compile: bool = False
    amp: bool = False
    channels_last: bool = False
    cuda_graphs: bool = False
    final_loss: float = float("nan")
    host_allocator: str = "default"    # "keeps freed memory" where train.allocator is in force
    baseline_examples_per_sec: float | None = None
    baseline_final_loss: float | None = None
    baseline_host_allocator: str | None = None
    speedup: float | None = None
    fast_path: dict | None = None      # with ``fast``: what ``training.fastpath`` chose, and why
    machine: dict = field(default_factory=dict)


def machine_info(device: torch.device) -> dict:
    info = dict(platform=platform.platform(), processor=platform.processor() or platform.machine(),
                cpu_threads=torch.get_num_threads(), torch=torch.__version__, cnnzoo=__version__,
                date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def matmul_peak(device: torch.device, dtype=torch.float32, size: int | None = None,
                seconds: float = 1.0) -> float:
    """Measured FLOP/s of square matrix products on ``device`` (the best of a few rounds)."""
    size = size or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)
    synchronize(device)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        synchronize(device)
        best = max(best, 4 * 2 * size ** 3 / (time.perf_counter() - start))
    return best


def peak_dtype(device: torch.device, amp: bool) -> torch.dtype:
    """The arithmetic the steps' peak is measured in: bf16 with ``amp``, except on a CPU that
    would only emulate it, where fp32 is the fastest arithmetic there is (and an emulated bf16
    peak would put the steps above 100 % of it)."""
    from .device import bf16_emulated

    return torch.bfloat16 if amp and not bf16_emulated(device) else torch.float32


def forward_flops(model: nn.Module, input_size) -> float:
    """FLOPs of one forward pass for one example (2 x multiply-adds of convs and linears)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
    return float(counter.get_total_flops())


class _PerSampleDataset(torch.utils.data.Dataset):
    """The textbook's pipeline: one PIL image at a time, resized, turned into a float tensor."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, resize: tuple[int, int] | None):
        self.images, self.labels, self.resize = images, labels, resize

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        from PIL import Image

        array = self.images[index]
        image = Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))
        if self.resize:
            image = image.resize((self.resize[1], self.resize[0]), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32) / 255
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(pixels)), int(self.labels[index])


def textbook_loader(dataset, batch_size: int, resize=None, workers: int = TEXTBOOK_WORKERS,
                    seed: int = 0):
    """A DataLoader the way d2l's ``load_data_fashion_mnist`` builds one (shuffled, workers)."""
    resize = (resize, resize) if isinstance(resize, int) else resize
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        _PerSampleDataset(dataset.images.numpy(), dataset.labels.numpy(), resize),
        batch_size=batch_size, shuffle=True, num_workers=workers, generator=generator,
        persistent_workers=workers > 0)


def _time_steps(step, batches, steps: int, warmup: int, device):
    """Run ``warmup`` then ``steps`` steps; returns (seconds of the timed steps, warm-up
    seconds, examples timed, last loss)."""
    batches = iter(batches)
    start = time.perf_counter()
    loss = None
    for _ in range(warmup):
        loss = step(*next(batches))
    synchronize(device)
    warm = time.perf_counter() - start
    start, examples = time.perf_counter(), 0
    for _ in range(steps):
        x, y = next(batches)
        loss = step(x, y)
        examples += len(y)
    synchronize(device)
    return time.perf_counter() - start, warm, examples, float(loss)


def _cycle_epochs(iterator):
    for epoch in itertools.count(1):
        iterator.set_epoch(epoch)
        yield from iterator


@dataclass
class TextbookResult:
    """The textbook's way, timed: examples/sec and the last loss."""
    examples_per_sec: float
    final_loss: float
    host_allocator: str


@dataclass
class _Setup:
    """What ours and the textbook's way share: recipe, device, data and model configuration."""
    name: str
    recipe: object
    dev: torch.device
    train_set: object
    resize: int | None      # None where the data are already the model's size
    input_size: list[int]   # (C, H, W): the recipe's square side, or the data's own H and W
    steps: int
    warmup: int
    seed: int

    @classmethod
    def make(cls, name, data, resize, batch_size, device, data_dir, steps, warmup, seed):
        from .device import pick_device
        from .training.recipes import recipe_for

        if steps < 1:
            raise CnnzooError(f"steps must be at least 1, not {steps}")
        recipe = recipe_for(name, "d2l").replace(batch_size=batch_size, resize=resize)
        dev = pick_device(device)
        train_set = bench_data(data, recipe.batch_size, data_dir)
        native = tuple(train_set.image_size[1:])
        # the model sees the recipe's resize, or the data at its own size (as train does)
        height_width = (recipe.resize, recipe.resize) if recipe.resize else native
        return cls(name, recipe, dev, train_set,
                   None if height_width == native else recipe.resize,
                   [train_set.image_size[0], *height_width], steps,
                   10 if warmup is None else warmup,  # allocator, kernel caches, compilation
                   seed)

    def model(self) -> nn.Module:
        """The model, built for the data's classes and input size (on the CPU, the model's own
        initialisation); an input size it cannot take is a one-line ``CnnzooError``."""
        from .training.prepare import check_fits
        from .training.rundir import build_model

        net = build_model(dict(model=self.name, classes=list(self.train_set.classes),
                               input_size=self.input_size))
        check_fits(net, self.name, self.input_size, len(self.train_set.classes))
        return net

    def fresh(self, channels_last: bool = False, graph: bool = False, textbook: bool = False):
        """The model with d2l's Xavier init, seeded, on the device, and its optimiser: cnnzoo's,
        or with ``textbook`` the book's ``torch.optim.SGD``."""
        from .device import memory_format
        from .training.optim import make_optimizer
        from .training.prepare import xavier_init

        torch.manual_seed(self.seed)
        net = self.model()
        xavier_init(net)
        net.to(self.dev, memory_format=memory_format(channels_last)).train()
        if textbook:
            return net, torch.optim.SGD(net.parameters(), lr=self.recipe.lr)
        return net, make_optimizer(self.recipe, net, self.dev, graph=graph)

    def textbook_step(self, net, optimizer):
        """train_ch6's step: eager fp32, and a host read of loss and accuracy every step (its
        Accumulator)."""
        dev, criterion = self.dev, nn.CrossEntropyLoss()

        def step(x, y):
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            logits = net(x)
            logits = logits[0] if isinstance(logits, tuple) else logits
            loss = criterion(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            float(loss.detach()) + float((logits.argmax(1) == y).sum())
            return loss.detach()
        return step


def bench_data(data: str, batch_size: int, data_dir=None):
    """The training split of ``data`` that steps of ``batch_size`` are timed on. The synthetic
    set is made with at least one batch of images (by default it has 1,000); a data set with
    fewer images than one batch is a one-line ``CnnzooError``, as is an unknown or missing one.
    """
    from .data.catalog import canonical_name
    from .data.synthetic import DEFAULT_NUM_SAMPLES

    name = canonical_name(data)
    samples = max(DEFAULT_NUM_SAMPLES["train"], batch_size) if name == "synthetic" else None
    train_set = _training_split(name, None if data_dir is None else str(data_dir), samples)
    if len(train_set) < batch_size:
        raise CnnzooError(f"{train_set.name} has {len(train_set):,} training images, fewer than "
                          f"one batch of {batch_size:,}; give a batch size of at most "
                          f"{len(train_set):,}")
    return train_set


@functools.lru_cache(maxsize=1)
def _training_split(name: str, data_dir: str | None, num_samples: int | None):
    """The data set's training split, read once for the check, the textbook's run and ours of
    every model of a call (they only read it)."""
    from .data import load_dataset

    options = {} if num_samples is None else {"num_samples": num_samples}
    return load_dataset(name, split="train", data_dir=data_dir, **options)


def _in_memory(function):
    """``function`` (a benchmark of one model) with the allocator refusing memory, for the data
    of a large batch or the activations of a large input, as one line naming the sizes."""
    @functools.wraps(function)
    def guarded(name, *args, batch_size=None, resize=None, **options):
        batch = f"batch_size={batch_size}" if batch_size else "its recipe's batch size"
        side = f", resize={resize}" if resize else ""
        with out_of_memory_as(f"benchmarking {name} at {batch}{side} does not fit in "
                              f"memory; give a smaller batch_size= or resize="):
            return function(name, *args, batch_size=batch_size, resize=resize, **options)
    return guarded


@_in_memory
def check_bench(name: str, *, data: str = "synthetic", resize: int | None = None,
                batch_size: int | None = None, device: str = "auto", steps: int = 30,
                data_dir: str | None = None) -> None:
    """Raise the one-line ``CnnzooError`` that ``bench_model`` with these arguments would raise
    while setting up (an unknown model or data set, data missing or smaller than one batch, a
    bad recipe value, an input size the model cannot take), before anything is measured."""
    _Setup.make(name, data, resize, batch_size, device, data_dir, steps, None, 0).model()


def check_results_file(path) -> None:
    """A one-line ``CnnzooError`` where ``append_results`` could not append to ``path``: a
    folder there, a file where a folder should be, no permission to write."""
    path = Path(path)
    if path.is_dir():
        raise CnnzooError(f"{path} is a folder; give a file to append the results to")
    folder = next(p for p in path.absolute().parents if p.exists())  # append_results makes the rest
    if not folder.is_dir():
        raise CnnzooError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise CnnzooError(f"cannot write {path}: permission denied")


def _allocator_state() -> str:
    from .training import allocator

    return "keeps freed memory" if allocator.in_force() else "default"


@_in_memory
def bench_textbook(name: str, *, data: str = "synthetic", resize: int | None = None,
                   batch_size: int | None = None, device: str = "auto", steps: int = 30,
                   warmup: int | None = None, data_dir: str | None = None,
                   seed: int = 0) -> TextbookResult:
    """Time ``steps`` training steps of a zoo model the textbook's way: a DataLoader over
    per-sample transforms with d2l's 4 workers, eager fp32, a host sync every step.

    Run it before our fast path in a process (``bench_model`` does): ours changes the process's
    memory allocator on the CPU, which the textbook's code would not have.
    """
    setup = _Setup.make(name, data, resize, batch_size, device, data_dir, steps, warmup, seed)
    net, optimizer = setup.fresh(textbook=True)
    with _quiet_worker_warning():
        loader = textbook_loader(setup.train_set, setup.recipe.batch_size, setup.resize,
                                 seed=seed)
    batches = _forever(loader)
    try:
        seconds, _, examples, loss = _time_steps(
            setup.textbook_step(net, optimizer), batches, steps, setup.warmup,
            setup.dev)
    finally:
        batches.close()
        del loader  # its worker processes end here, before anything else is timed
    return TextbookResult(examples / seconds, loss, _allocator_state())


@_in_memory
def bench_model(name: str, *, data: str = "synthetic", resize: int | None = None,
                batch_size: int | None = None, device: str = "auto", compile: bool = False,
                amp: bool = False, channels_last: bool = False, cuda_graphs: bool = False,
                steps: int = 30, warmup: int | None = None,
                baseline: bool | TextbookResult = False,
                data_dir: str | None = None, seed: int = 0,
                peak: float | None = None, fast: bool = False) -> BenchResult:
    """Time ``steps`` training steps of a zoo model with its d2l recipe (lr, batch, resize).

    ``compile``, ``amp``, ``channels_last`` and ``cuda_graphs`` choose our fast path (the same
    ``training.step.TrainStep`` as training runs); on the CPU it also keeps
    freed memory in the process (``training.allocator``). With ``baseline=True`` the same model,
    recipe and data are first trained the textbook's way (``bench_textbook``) in this process,
    and ``speedup`` is ours / the textbook's in examples per second; a ``TextbookResult``
    measured earlier may be passed instead. ``fast`` lets ``training.fastpath`` choose ``amp``,
    ``channels_last`` and ``cuda_graphs`` for this model, as ``cnnzoo train --fast`` does.
    """
    from .data import BatchIterator
    from .training import allocator

    setup = _Setup.make(name, data, resize, batch_size, device, data_dir, steps, warmup, seed)
    if baseline is True:
        baseline = bench_textbook(name, data=data, resize=resize, batch_size=batch_size,
                                  device=device, steps=steps, warmup=warmup,
                                  data_dir=data_dir, seed=seed)
    dev = setup.dev
    choice = None
    if fast:
        from .training import fastpath

        fastpath.check(dict(compile=compile, amp=amp, channels_last=channels_last,
                            cuda_graphs=cuda_graphs), 1)
        config = dict(model=name, model_args={}, classes=list(setup.train_set.classes),
                      input_size=setup.input_size)
        choice = fastpath.choose(config, setup.recipe, dev)
        amp, channels_last, cuda_graphs = (choice.flags.amp, choice.flags.channels_last,
                                           choice.flags.cuda_graphs)
    if cuda_graphs:
        check_graphs(dev, compile)
    if dev.type == "cpu":
        allocator.keep_freed_memory()
    net, optimizer = setup.fresh(channels_last, graph=cuda_graphs)
    flops = forward_flops(net, setup.input_size)
    step_net = torch.compile(net) if compile else net
    ours = BatchIterator(setup.train_set.to(dev), setup.recipe.batch_size, seed=seed,
                         resize=setup.resize, drop_last=True)
    step = TrainStep(step_net, net, optimizer, nn.CrossEntropyLoss(),
                     batch_size=setup.recipe.batch_size, device=dev, amp=amp,
                     channels_last=channels_last, graph=cuda_graphs)

    def train_on(x, y):
        step(x, y)
        return step.loss

    seconds, warm, examples, loss = _time_steps(train_on, _cycle_epochs(ours), steps,
                                                max(setup.warmup, GRAPH_WARMUP_STEPS + 1)
                                                if cuda_graphs else setup.warmup, dev)
    throughput = examples / seconds
    peak = peak or matmul_peak(dev, peak_dtype(dev, amp))
    achieved = 3 * flops * throughput
    result = BenchResult(
        model=name, device=str(dev), batch_size=setup.recipe.batch_size,
        input_size=setup.input_size, steps=steps, examples_per_sec=throughput,
        step_ms=1e3 * seconds / steps, epoch_seconds=len(setup.train_set) / throughput,
        warmup_seconds=warm, forward_flops=flops, achieved_tflops=achieved / 1e12,
        peak_tflops=peak / 1e12, fraction_of_peak=achieved / peak,
        data=setup.train_set.name, compile=compile, amp=amp,
        channels_last=channels_last, cuda_graphs=cuda_graphs, final_loss=loss,
        host_allocator=_allocator_state(), fast_path=choice.record() if choice else None,
        machine=machine_info(dev))
    if baseline:
        result.baseline_examples_per_sec = baseline.examples_per_sec
        result.baseline_final_loss = baseline.final_loss
        result.baseline_host_allocator = baseline.host_allocator
        result.speedup = throughput / baseline.examples_per_sec
    return result


@contextlib.contextmanager
def _quiet_worker_warning():
    # the textbook's 4 workers exceed a small machine's cores; that is the way being measured
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*worker processes in total.*")
        yield


def _forever(loader):
    with _quiet_worker_warning():
        while True:
            yield from loader


def append_results(path: Path, results: list[BenchResult]) -> None:
    """Append results as JSON lines (one object per model and run)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        for result in results:
            handle.write(json.dumps(asdict(result), sort_keys=True) + "\n")
