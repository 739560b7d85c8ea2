"""Run one cnnzoo command under cProfile and print where its time went.

    python benchmarks/profile_command.py [--top N] COMMAND ARGS...

e.g. ``python benchmarks/profile_command.py train resnet9_fmnist --epochs 1``: the command runs
as ``cnnzoo COMMAND ARGS...`` would, then the N (default 40) calls with the most cumulative
time are printed. On a GPU most of the steps' time shows up where the host waits for the
device; what the profile is for is the time outside the steps: imports, data, set-up, saving.
"""

from __future__ import annotations

import cProfile
import pstats
import sys

from cnnzoo.cli import main as cnnzoo


def main(argv: list[str]) -> int:
    top = 40
    if argv[:1] == ["--top"]:
        top, argv = int(argv[1]), argv[2:]
    profile = cProfile.Profile()
    profile.enable()
    try:
        status = cnnzoo(argv)
    finally:
        profile.disable()
        print(f"\n== the {top} calls with the most cumulative time")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(top)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
