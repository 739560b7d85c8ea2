"""Where a training step's device time goes, operator by operator, for each model.

    python benchmarks/kernels.py MODEL... [--steps 5] [--device cuda] [--top 12]
        [--batch-size B] [--no-amp] [--no-channels-last] [--results kernels.jsonl]

For every model (its d2l recipe's batch size and input size, synthetic data, and by default
bf16 autocast and channels-last, as the fast path trains) a few eager steps warm up, then
``--steps`` steps run under ``torch.profiler``. The operators' own device time (CPU time on the
CPU) is grouped two ways and printed per step:

- by kind: convolution forward, convolution backward, pooling, normalisation, activations and
  other element-wise work, the optimiser, the loss, copies and layout changes, the rest;
- by operator and input shapes, the top ``--top`` rows: a convolution's rows name its layer by
  its shapes.

A step's time that no operator claims (launch gaps, the host) shows as the difference between
the wall time and the operators' sum. One JSON line per model goes to ``--results``. Run it with
``PYTHONPATH=src`` from the repository root, or with cnnzoo installed; the eager step is the
one ``--cuda-graphs`` records, so its kernels are the graphs' too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from cnnzoo.errors import CnnzooError

KINDS = (  # (kind, substrings of aten operator names), first match wins, after
          # "conv backward" for a name with both words
    ("conv forward", ("convolution", "conv2d", "cudnn_conv", "mkldnn_conv")),
    ("matmul", ("addmm", "::mm", "matmul", "linear", "bmm")),
    ("pooling", ("pool",)),
    ("normalisation", ("batch_norm", "layer_norm", "native_norm")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss", "_softmax")),
    ("optimiser", ("_foreach", "_fused_sgd", "_fused_adam")),
    ("activation", ("relu", "threshold", "sigmoid", "tanh", "hardtanh", "dropout",
                    "bernoulli")),
    ("copies and layout", ("copy_", "clone", "contiguous", "_to_copy", "cat", "fill_",
                           "zero_", "empty")),
    ("element-wise", ("add", "mul", "div", "sub", "sum", "mean", "argmax", "eq", "where")),
)


def kind_of(name: str) -> str:
    if "conv" in name and "backward" in name:  # cuDNN's, oneDNN's and the plain kernels'
        return "conv backward"
    for kind, parts in KINDS:
        if any(part in name for part in parts):
            return kind
    return "other"


def self_time_us(event, device: torch.device) -> float:
    if device.type == "cpu":
        return event.self_cpu_time_total
    for name in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, name):
            return getattr(event, name)
    return 0.0


def make_step(model: str, device: torch.device, batch_size: int | None, amp: bool,
              channels_last: bool):
    """The fast path's eager step for ``model`` with its d2l recipe, on synthetic data, set up
    as ``cnnzoo bench`` sets it up (seeded model, Xavier initialisation, cnnzoo's optimiser)."""
    from cnnzoo.bench import _Setup
    from cnnzoo.training.step import TrainStep

    setup = _Setup.make(model, "synthetic", None, batch_size, str(device), None, 1, 0, 0)
    net, optimizer = setup.fresh(channels_last)
    batch = setup.recipe.batch_size
    step = TrainStep(net, net, optimizer, nn.CrossEntropyLoss(), batch_size=batch,
                     device=setup.dev, amp=amp, channels_last=channels_last)
    x = torch.randn(batch, *setup.input_size, device=setup.dev)
    y = torch.randint(0, len(setup.train_set.classes), (batch,), device=setup.dev)
    return step, x, y, batch, setup.input_size


def profile_model(model: str, args, device: torch.device) -> dict:
    from cnnzoo.device import synchronize

    step, x, y, batch, input_size = make_step(model, device, args.batch_size, args.amp,
                                              args.channels_last)
    for _ in range(args.warmup):
        step(x, y)
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        start = time.perf_counter()
        for _ in range(args.steps):
            step(x, y)
        synchronize(device)
        wall_ms = 1e3 * (time.perf_counter() - start) / args.steps
    rows, kinds = [], defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        if not event.key.startswith("aten::"):
            continue
        ms = self_time_us(event, device) / 1e3 / args.steps
        if ms <= 0:
            continue
        kind = kind_of(event.key)
        kinds[kind] += ms
        row = dict(op=event.key, kind=kind, ms=ms, calls=event.count / args.steps,
                   shapes=str(event.input_shapes)[:120])
        rows.append(row)
    rows.sort(key=lambda row: -row["ms"])
    total = sum(kinds.values())
    return dict(model=model, device=str(device), batch_size=batch, input_size=input_size,
                amp=args.amp, channels_last=args.channels_last, steps=args.steps,
                wall_ms=wall_ms, operators_ms=total,
                kinds=dict(sorted(kinds.items(), key=lambda item: -item[1])),
                top=rows[:args.top])


def print_profile(result: dict) -> None:
    total, wall = result["operators_ms"], result["wall_ms"]
    print(f"\n== {result['model']}: batch {result['batch_size']}, input "
          f"{'x'.join(map(str, result['input_size']))}, {wall:.2f} ms per step of wall time, "
          f"{total:.2f} ms in operators ({'bf16' if result['amp'] else 'fp32'}, "
          f"{'channels-last' if result['channels_last'] else 'contiguous'})")
    print(f"   {'kind':<20}{'ms/step':>10}{'share':>8}")
    for kind, ms in result["kinds"].items():
        print(f"   {kind:<20}{ms:>10.3f}{ms / total:>8.1%}")
    print(f"   {'op (input shapes)':<60}{'ms/step':>10}{'share':>8}{'calls':>7}")
    for row in result["top"]:
        label = f"{row['op'][6:]} {row['shapes']}"
        print(f"   {label[:60]:<60}{row['ms']:>10.3f}{row['ms'] / total:>8.1%}"
              f"{row['calls']:>7.0f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="registry names, e.g. vgg11_d2l nin_d2l")
    parser.add_argument("--steps", type=int, default=5, help="profiled steps (default 5)")
    parser.add_argument("--warmup", type=int, default=5, help="steps before (default 5)")
    parser.add_argument("--top", type=int, default=12, help="operator rows to print")
    parser.add_argument("--batch-size", type=int, help="instead of the d2l recipe's")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                        help="bf16 autocast (default; --no-amp for fp32)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="NHWC (default; --no-channels-last for contiguous NCHW)")
    parser.add_argument("--results", default="kernels.jsonl")
    args = parser.parse_args(argv)
    for name, value in (("--steps", args.steps), ("--top", args.top)):
        if value < 1:
            parser.error(f"{name} must be at least 1, not {value}")
    if args.warmup < 0 or (args.batch_size is not None and args.batch_size < 1):
        parser.error("--warmup must be 0 or more and --batch-size at least 1")
    from cnnzoo.device import pick_device

    from cnnzoo.bench import check_results_file

    try:
        device = pick_device(args.device)
        check_results_file(args.results)
    except CnnzooError as error:
        parser.error(str(error))
    failed = 0
    for model in args.models:
        try:
            result = profile_model(model, args, device)
        except (CnnzooError, RuntimeError) as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            print(f"{model}: failed: {first[:200]}", flush=True)
            failed += 1
            continue
        print_profile(result)
        with open(args.results, "a") as results:
            results.write(json.dumps(result) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
