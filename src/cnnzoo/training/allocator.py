"""Host memory: keep freed tensor memory in the process instead of handing it back each step.

With glibc's default settings a tensor of more than 128 KiB is given its own ``mmap`` and
returned to the system when freed, and the top of the heap is trimmed as soon as 128 KiB lie
free there, so every training step on the CPU faults in and zeroes fresh pages for each of its
activations and gradients. Raising the mmap and trim thresholds lets those blocks be reused from
step to step, which shortens a small model's CPU steps markedly (measured: BENCHMARKS.md,
keeping freed memory). It is what ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` in
the environment would do, set from inside the process. The cost is that up to ``TRIM_BYTES`` of
freed memory stays with the process.

The trim threshold is the largest mallopt takes: a 224x224 model's float32 batch of 512 (the
evaluation batch) frees more than a gigabyte between its layers (NiN: 0.57 GB a ReLU output),
and a threshold below that would hand it back and fault it in again every batch
(BENCHMARKS.md, NiN at 224x224).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
KEEP_BYTES = 1 << 30   # blocks up to this size come from the heap
TRIM_BYTES = (1 << 31) - 1  # this much may stay free at the top of the heap
TOP_PAD_BYTES = 64 << 20  # the heap grows by at least this much at a time

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the settings once per process (glibc on Linux only); True when they are in force.

    Process-wide and not undone: call it for a process that trains on the CPU.
    """
    global _applied
    if _applied is None:
        _applied = _mallopt()
    return _applied


def in_force() -> bool:
    """Whether ``keep_freed_memory`` has changed this process's settings."""
    return bool(_applied)


def _mallopt() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, KEEP_BYTES), (M_TRIM_THRESHOLD, TRIM_BYTES),
        (M_TOP_PAD, TOP_PAD_BYTES)))
