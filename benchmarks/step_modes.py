"""How each way of running the training step pays, model by model, on one device.

    python benchmarks/step_modes.py MODEL... [--modes eager,graphs,graphs+cudnn] [--steps 100]
        [--device cuda] [--data synthetic] [--results step-modes.jsonl]

For every model (its d2l recipe: batch size, resize) and mode, ``cnnzoo.bench.bench_model``
times the steps after a warm-up, always with bf16 autocast and channels-last; a table of
milliseconds per step and the last losses is printed and every result appended as JSON. Modes:

    eager           the step run op by op
    compile         the step with the model torch.compile'd (``--compile``)
    graphs          recorded once as a CUDA graph and replayed (``--cuda-graphs``)
    eager+cudnn     / graphs+cudnn: the same with cuDNN timing its algorithms per shape
                    (``torch.backends.cudnn.benchmark``, which cnnzoo leaves off)
    compile+graphs  torch.compile'd model inside the recorded step; the command line
                    refuses this pair, this measures whether it should

Run it with ``PYTHONPATH=src`` from the repository root, or with cnnzoo installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

import torch

import cnnzoo.bench as bench
from cnnzoo.errors import CnnzooError

MODES = {  # name: (compile, cuda_graphs, cudnn benchmark)
    "eager": (False, False, False),
    "eager+cudnn": (False, False, True),
    "compile": (True, False, False),
    "graphs": (False, True, False),
    "graphs+cudnn": (False, True, True),
    "compile+graphs": (True, True, False),
}


def measure(model: str, mode: str, args, peak: float) -> dict:
    compile, graphs, cudnn = MODES[mode]
    torch.backends.cudnn.benchmark = cudnn
    check = bench.check_graphs
    if compile and graphs:
        bench.check_graphs = lambda *_, **__: None
    start = time.perf_counter()
    try:
        result = bench.bench_model(model, data=args.data, device=args.device, steps=args.steps,
                                   compile=compile, amp=True, channels_last=True,
                                   cuda_graphs=graphs, peak=peak)
    finally:
        bench.check_graphs = check
        torch.backends.cudnn.benchmark = False
    row = asdict(result)
    row.update(mode=mode, cudnn_benchmark=cudnn, seconds=time.perf_counter() - start)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--modes", default="eager,graphs,graphs+cudnn")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--results", default="step-modes.jsonl")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, not {args.steps}")
    from cnnzoo.device import pick_device

    try:
        device = pick_device(args.device)
        bench.check_results_file(args.results)
    except CnnzooError as error:
        parser.error(str(error))
    peak = bench.matmul_peak(device, torch.bfloat16)
    print(f"{'model':<24}" + "".join(f"{m:>16}" for m in modes) + "   ms per step (last loss)",
          flush=True)
    failed = 0
    for model in args.models:
        cells = []
        for mode in modes:
            try:
                row = measure(model, mode, args, peak)
            except (CnnzooError, RuntimeError) as error:
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                print(f"  {model} {mode}: failed: {first[:200]}", flush=True)
                cells.append(f"{'failed':>16}")
                failed += 1
                continue
            with open(args.results, "a") as results:
                results.write(json.dumps(row) + "\n")
            cells.append(f"{row['step_ms']:>8.2f} ({row['final_loss']:.3f})".rjust(16))
        print(f"{model:<24}" + "".join(cells), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
