"""cnnzoo bench: training throughput of zoo models, optionally against the textbook's way."""

from __future__ import annotations

from ._args import (add_device, add_fast, add_fast_path, check_fast_path, positive_int,
                    user_path)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="measure training speed (examples/sec, FLOP/s, vs the textbook's loop)",
        description="Time training steps of each model with its d2l recipe: examples/sec after "
                    "a warm-up (synchronised), time per epoch, achieved FLOP/s as a fraction of "
                    "a measured matrix-product peak; with --baseline, the same model trained "
                    "the textbook's way (DataLoader over per-sample transforms, a host sync "
                    "every step) in the same run, and the ratio.")
    p.add_argument("models", metavar="NAME", nargs="+", help="registry names")
    p.add_argument("--data", default="synthetic",
                   help="synthetic (default: 1,000 images, or one batch if larger) or "
                        "fashion-mnist, ...; it must hold at least one batch")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the data set's files are (searched otherwise)")
    p.add_argument("--resize", type=positive_int, help="input side (the recipe's by default)")
    p.add_argument("--batch-size", type=positive_int, help="the recipe's by default")
    add_device(p)
    add_fast_path(p)
    add_fast(p)
    p.add_argument("--steps", type=positive_int, default=30, help="timed steps (default 30)")
    p.add_argument("--baseline", action="store_true", help="also time the textbook's way")
    p.add_argument("--results", type=user_path, default="bench-results.jsonl",
                   help="JSON lines file the results are appended to (default bench-results.jsonl)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..bench import (append_results, bench_model, bench_textbook, check_bench,
                         check_results_file, matmul_peak, peak_dtype)
    from ..models import model_info
    from ..device import pick_device

    for name in args.models:  # every name is checked before any measuring starts
        model_info(name)
    check_results_file(args.results)
    device = pick_device(args.device)
    check_fast_path(args, device)
    common = dict(data=args.data, data_dir=args.data_dir, resize=args.resize,
                  batch_size=args.batch_size, device=str(device), steps=args.steps)
    for name in args.models:  # and the data, batch, recipe and input size of each
        check_bench(name, **common)
    textbook = {}
    if args.baseline:
        # every textbook run comes first, in the process as Python starts it: our fast path
        # changes the process's memory allocator on the CPU
        for name in args.models:
            print(f"timing {name} the textbook's way ...", flush=True)
            textbook[name] = bench_textbook(name, **common)
    dtype = peak_dtype(device, args.amp or args.fast)  # --fast: the device's fastest
    peak = matmul_peak(device, dtype)
    print(f"device {device}: {str(dtype).removeprefix('torch.')} matrix-product peak "
          f"{peak / 1e12:.3f} TFLOP/s")
    results = []
    header = (f"{'model':<22}{'batch':>6}{'input':>12}{'examples/s':>12}{'ms/step':>9}"
              f"{'s/epoch':>9}{'TFLOP/s':>9}{'of peak':>8}")
    if args.baseline:
        header += f"{'textbook ex/s':>15}{'speed-up':>10}"
    print(header)
    for name in args.models:
        r = bench_model(name, **common, compile=args.compile, amp=args.amp,
                        channels_last=args.channels_last, cuda_graphs=args.cuda_graphs,
                        baseline=textbook.get(name, False), peak=peak, fast=args.fast)
        results.append(r)
        line = (f"{r.model:<22}{r.batch_size:>6}{'x'.join(map(str, r.input_size)):>12}"
                f"{r.examples_per_sec:>12,.0f}{r.step_ms:>9.1f}{r.epoch_seconds:>9.1f}"
                f"{r.achieved_tflops:>9.3f}{r.fraction_of_peak:>8.1%}")
        if args.baseline:
            line += f"{r.baseline_examples_per_sec:>15,.0f}{r.speedup:>9.1f}x"
        print(line, flush=True)
        if r.fast_path:
            from ..training.fastpath import describe

            print(f"  --fast: {describe(r.fast_path)}")
        if r.warmup_seconds > 1:
            print(f"  (warm-up {r.warmup_seconds:.1f} s, not counted)")
        append_results(args.results, [r])  # as each model finishes: a cut run keeps them
    print(f"results appended to {args.results}")
    return 0
