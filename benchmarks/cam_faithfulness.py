"""How faithful each explanation method is: the deletion test on a shipped model.

    python benchmarks/cam_faithfulness.py [NAME] [--images 500] [--methods all]

For the first ``--images`` Fashion-MNIST test images, each method of ``cnnzoo.show.cam``
ranks the pixels of each image for its true class; the 10, 20 and 50 % ranked highest are set
to black (the input of a black image) and the true class's mean probability is read, against
the same count of pixels drawn at random. A method is faithful where its deletions lower the
probability more than random ones do. Prints a Markdown table (the one in docs/show.md) and
the seconds each method took.

Run it with ``PYTHONPATH=src`` from the repository root, or with cnnzoo installed.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from cnnzoo.show.cam import FRACTIONS, METHODS, attribute, black_input, deletion_curve
from cnnzoo.training.evaluation import preprocess, run_dataset
from cnnzoo.training.rundir import load_source

BATCH = 50


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", default="lenet5_d2l")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--methods", default="all", help="comma-separated, or all")
    args = parser.parse_args(argv)
    methods = METHODS if args.methods == "all" else args.methods.split(",")
    run = load_source(args.name, "fashion-mnist")
    test = run_dataset(run)
    x = preprocess(run, test.images[: args.images])
    labels = test.labels[: args.images]
    baseline = black_input(run)
    print(f"{args.name}, fashion-mnist weights, first {len(x)} test images; true class's "
          f"mean probability after deleting the top-ranked / random pixels")
    print()
    header = " | ".join(f"{round(f * 100)} % ranked / random" for f in FRACTIONS)
    print(f"| method | intact | {header} | s |")
    print("| --- | ---: |" + " ---: |" * len(FRACTIONS) + " ---: |")
    for method in methods:
        start = time.perf_counter()
        curves = []
        for first in range(0, len(x), BATCH):
            batch, truth = x[first:first + BATCH], labels[first:first + BATCH]
            maps = attribute(run.model, batch, truth, method, baseline=baseline)
            curves.append((len(batch), deletion_curve(run.model, batch, truth, maps,
                                                      baseline=baseline, seed=first)))
        seconds = time.perf_counter() - start
        total = sum(count for count, _ in curves)

        def mean(key, index=None):
            return sum(count * (curve[key] if index is None else curve[key][index])
                       for count, curve in curves) / total

        cells = " | ".join(f"{mean('ranked', i):.3f} / {mean('random', i):.3f}"
                           for i in range(len(FRACTIONS)))
        print(f"| {method} | {mean('intact'):.3f} | {cells} | {seconds:.1f} |", flush=True)
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
