"""Run one cnnzoo command under cProfile and print where its time went.

    python benchmarks/profile_command.py [--top N] COMMAND ARGS...

e.g. ``python benchmarks/profile_command.py train resnet9_fmnist --epochs 1``: the command runs
as ``cnnzoo COMMAND ARGS...`` would, then the N (default 40) calls with the most cumulative
time are printed. On a GPU most of the steps' time shows up where the host waits for the
device; what the profile is for is the time outside the steps: imports, data, set-up, saving.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys

from cnnzoo.cli import main as cnnzoo


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=40, help="how many calls to print")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="a cnnzoo command and its arguments, e.g. train lenet5_d2l")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("give a cnnzoo command to profile, e.g. train lenet5_d2l --epochs 1")
    if args.top < 1:
        parser.error(f"--top must be at least 1, not {args.top}")
    profile = cProfile.Profile()
    profile.enable()
    try:
        status = cnnzoo(args.command)
    finally:
        profile.disable()
        print(f"\n== the {args.top} calls with the most cumulative time")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
