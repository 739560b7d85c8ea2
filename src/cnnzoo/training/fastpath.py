"""``fast=True`` (``--fast``): the fast-path flags that train a given model quickest on this
machine, measured.

Which flags pay depends on the model as much as on the machine: on one CPU the same flag
shortens one model's steps and lengthens another's, and on a CPU without bf16 arithmetic
autocast is emulated and several times slower (measured per model: BENCHMARKS.md, ``--fast``).
So ``choose`` does not guess: it times a few training steps of the run's own model, optimiser,
batch size and input size on random data with each candidate and keeps the fastest. The flags
change how the steps run, never the recipe; the choice and the figures behind it go into the
run's configuration, and a resumed run keeps them.

Candidates: channels-last off and on, each with and without bf16 autocast where the device has
bf16 arithmetic (on a CPU, as oneDNN judges it); on CUDA always with CUDA graphs. Never
``--compile``, whose warm-up a few probe steps cannot pay back.

A measurement is remembered in ``fast-path.json`` in cnnzoo's cache directory, keyed by the
machine (processor or GPU name, threads, torch and cnnzoo versions), the model and its
arguments, the input size, the batch size and the optimiser, so the next run of the same model
on the same machine starts at once.
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from .._io import atomic_write_text
from ..errors import CnnzooError, CnnzooWarning

CACHE_FILE = "fast-path.json"
ROUNDS = 3               # the candidates take turns this many times; each keeps its best
MIN_STEPS = 2            # timed steps per turn, at least
MIN_SECONDS = 0.1        # and at least this long
DROP_RATIO = 1.5         # a candidate this many times slower than the leader takes no more turns


@dataclass(frozen=True)
class Flags:
    amp: bool = False
    channels_last: bool = False
    cuda_graphs: bool = False

    def __str__(self) -> str:
        on = [flag for flag, used in (("--amp", self.amp), ("--channels-last", self.channels_last),
                                      ("--cuda-graphs", self.cuda_graphs)) if used]
        return " ".join(on) or "no flags"


@dataclass
class Choice:
    flags: Flags
    examples_per_sec: dict[str, float]   # each candidate's, by str(Flags)
    measured: str                        # when (UTC, ISO 8601)
    remembered: bool                     # read from the cache rather than measured in this process
    seconds: float                       # spent measuring in this process

    def record(self) -> dict:
        """The form kept in a run's config.json (``describe`` reads it)."""
        return dict(chosen=str(self.flags), examples_per_sec=self.examples_per_sec,
                    measured=self.measured, remembered=self.remembered,
                    seconds=round(self.seconds, 2))


def describe(record: dict) -> str:
    """One line from a run's record: "--amp --channels-last (13,093 examples/s; no flags
    10,561, ...), measured in 1.4 s"."""
    best, rates = record["chosen"], record["examples_per_sec"]
    others = ", ".join(f"{name} {rate:,.0f}" for name, rate in rates.items() if name != best)
    when = (f"remembered from {record['measured'][:10]}" if record["remembered"]
            else f"measured in {record['seconds']:.1f} s")
    return f"{best} ({rates[best]:,.0f} examples/s{'; ' + others if others else ''}), {when}"


def candidates(device: torch.device) -> list[Flags]:
    """The flag sets worth timing on ``device``."""
    from ..device import cpu_has_fast_bf16

    if device.type == "cuda":
        amps = (True,) if torch.cuda.is_bf16_supported() else (False,)
        graphs = True
    elif device.type == "cpu":
        amps = (False, True) if cpu_has_fast_bf16() else (False,)
        graphs = False
    else:  # MPS: the plain steps, no flag being known to pay there
        return [Flags()]
    return [Flags(amp, channels_last, graphs) for amp in amps for channels_last in (False, True)]


def examples_per_sec(make_net, recipe, input_size, num_classes: int, device: torch.device,
                     flag_sets: list[Flags], rounds: int = ROUNDS) -> dict[Flags, float]:
    """Examples per second of training steps of a fresh ``make_net()`` on one random batch,
    for each of ``flag_sets``: each set's best of ``rounds`` rounds, the sets taking turns within
    a round (so a machine that slows down for a moment slows one round of each, not all the
    rounds of one) and a set far behind dropping out (``race``), each turn ``MIN_STEPS`` steps
    and ``MIN_SECONDS`` at least, after a warm-up.
    """
    from ..device import memory_format, synchronize
    from .optim import make_optimizer
    from .step import GRAPH_WARMUP_STEPS, TrainStep

    batch = recipe.batch_size
    x = torch.rand(batch, *input_size, device=device)
    y = torch.randint(0, num_classes, (batch,), device=device)
    steps = {}
    for flags in flag_sets:
        net = make_net().to(device, memory_format=memory_format(flags.channels_last))
        optimizer = make_optimizer(recipe, net, device, graph=flags.cuda_graphs)
        step = TrainStep(net, net, optimizer, nn.CrossEntropyLoss(), batch_size=batch,
                         device=device, amp=flags.amp, channels_last=flags.channels_last,
                         grad_clip=recipe.grad_clip, graph=flags.cuda_graphs)
        for _ in range(GRAPH_WARMUP_STEPS + 2 if flags.cuda_graphs else 2):
            step(x, y)
        steps[flags] = step

    def turn(flags: Flags) -> float:
        step = steps[flags]
        synchronize(device)
        count, start = 0, time.perf_counter()
        while count < MIN_STEPS or time.perf_counter() - start < MIN_SECONDS:
            step(x, y)
            synchronize(device)
            count += 1
        return count * batch / (time.perf_counter() - start)

    return race(turn, flag_sets, rounds)


def race(turn, candidates: list, rounds: int = ROUNDS) -> dict:
    """Each candidate's best of ``turn(candidate)`` (a rate) over ``rounds`` rounds, the
    candidates taking turns within a round. After a round, one whose best is below the
    leader's by more than ``DROP_RATIO`` takes no more turns and keeps the best it had. On a
    small shared CPU two turns of the same steps in one round can differ by a good part of that
    ratio, so a candidate is dropped only when it is slower than a pause alone would make it;
    and the probe of a 224-px model, whose slowest candidates take seconds a step, stops
    spending them (BENCHMARKS.md, ``--fast``)."""
    best = dict.fromkeys(candidates, 0.0)
    racing = list(candidates)
    for _ in range(rounds):
        for candidate in racing:
            best[candidate] = max(best[candidate], turn(candidate))
        leader = max(best.values())
        racing = [c for c in racing if best[c] * DROP_RATIO >= leader]
    return best


def choose(config: dict, recipe, device: torch.device, *, batch_size: int | None = None,
           cache: bool = True, on_measure=None, make_net=None) -> Choice:
    """The fastest candidate for the run ``config`` describes (its model, model arguments,
    classes and input size) with ``recipe`` on ``device``; remembered in the cache.
    ``batch_size`` is that of the run's steps (the recipe's unless the data set is smaller);
    ``on_measure(text)``, if given, hears a line before a measurement starts; ``make_net()``
    makes each model timed (by default the registered model the run names, built afresh).

    The probe's random numbers come from a forked generator, so the run that follows is the
    same as one given the chosen flags by hand.
    """
    from .rundir import build_model

    if batch_size is not None:
        recipe = recipe.replace(batch_size=batch_size)
    if make_net is None:
        make_net = lambda: build_model(config)  # noqa: E731
    key = _key(config, recipe, device, make_net)
    path = _cache_path()
    if cache:
        remembered = _entry(_read(path).get(key))
        if remembered is not None:
            return remembered
    flag_sets = candidates(device)
    if on_measure is not None:
        on_measure(f"fast=True: timing {len(flag_sets)} sets of flags for {config['model']} on "
                   f"{device.type} (remembered for the next run)")
    start = time.perf_counter()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        rates = examples_per_sec(make_net, recipe, config["input_size"],
                                 len(config["classes"]), device, flag_sets)
    best = max(rates, key=rates.get)
    choice = Choice(best, {str(f): round(r, 1) for f, r in rates.items()},
                    datetime.now(timezone.utc).isoformat(timespec="seconds"), remembered=False,
                    seconds=time.perf_counter() - start)
    if cache:
        problem = _remember(path, key, dict(flags=vars(best),
                                            examples_per_sec=choice.examples_per_sec,
                                            measured=choice.measured))
        if problem:
            warnings.warn(f"fast=True: the measurement is not remembered in {path} ({problem}): "
                          f"the next run measures again; set CNNZOO_DATA to a folder that can "
                          f"be written", CnnzooWarning, stacklevel=2)
    return choice


def _entry(known) -> Choice | None:
    """A cache entry as a ``Choice``; None for one that is missing or not of the form this
    module writes (then the candidates are measured again)."""
    try:
        flags = Flags(**known["flags"])
        rates = {str(name): float(rate) for name, rate in known["examples_per_sec"].items()}
        measured = str(known["measured"])
    except (TypeError, KeyError, ValueError, AttributeError):
        return None
    if not all(isinstance(value, bool) for value in vars(flags).values()) or \
            str(flags) not in rates:
        return None
    return Choice(flags, rates, measured, remembered=True, seconds=0.0)


def check(config: dict, world_size: int) -> None:
    """Refuse ``fast=True`` beside the flags it chooses, ``compile=True`` or torchrun."""
    given = [f"{key}=True" for key in ("amp", "channels_last", "cuda_graphs", "compile")
             if config.get(key)]
    if given:
        raise CnnzooError(f"fast=True chooses the fast-path flags itself; leave out "
                          f"{' '.join(given)}, or fast=True")
    if world_size > 1:
        raise CnnzooError("fast=True measures in one process; under torchrun give the flags "
                          "themselves")


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_name()
    return f"{device.type}:{name}|threads {torch.get_num_threads()}|torch {torch.__version__}" \
           f"|cnnzoo {__version__}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _key(config: dict, recipe, device: torch.device, make_net) -> str:
    model = f"{config['model']} {json.dumps(config.get('model_args') or {}, sort_keys=True)}"
    if config.get("model_kind", "registry") != "registry":
        # a model of the user's is known by its class name and its size: another "Net"
        # of another size is another model
        parameters = sum(p.numel() for p in make_net().parameters())
        model = f"{model} ({config['model_kind']}, {parameters} parameters)"
    size = "x".join(map(str, config["input_size"]))
    return (f"{_machine(device)}|{model}|{len(config['classes'])} classes"
            f"|{size}|batch {recipe.batch_size}|{recipe.optimizer}")


def _cache_path() -> Path:
    from ..data.download import cache_root

    return cache_root() / CACHE_FILE


def _read(path: Path) -> dict:
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _remember(path: Path, key: str, entry: dict) -> str | None:
    """Add an entry to the cache; a cache that cannot be written is no error: returns why (None
    when written), and leaves no temporary file."""
    known = _read(path)
    known[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(known, indent=1))
    except OSError as error:
        return error.strerror or str(error)
    except CnnzooError as error:  # the write's own one line; its cause says it shortest
        return getattr(error.__cause__, "strerror", None) or str(error)
    return None
