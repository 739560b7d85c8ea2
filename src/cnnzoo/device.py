"""The device a model runs on: picking one by name, waiting for it, and what its CPU can do."""

from __future__ import annotations

import torch

from .errors import CnnzooError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; a device this machine lacks (``cuda:1`` on a
    machine with one GPU included) is a one-line ``CnnzooError`` naming those it has."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _has_mps():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise CnnzooError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from error
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and not gpus:
        problem = "no CUDA GPU is available here"
    elif device.type == "cuda" and device.index is not None and device.index >= gpus:
        problem = f"this machine has {gpus} CUDA GPU{'s' if gpus > 1 else ''}"
    elif device.type == "mps" and not _has_mps():
        problem = "MPS is not available here"
    else:
        return device
    here = ["cpu"] + (["cuda"] + [f"cuda:{index}" for index in range(gpus)] if gpus else []) \
        + (["mps"] if _has_mps() else [])
    raise CnnzooError(f"device {name} asked for, but {problem}; use {', '.join(here)} or auto")


def _has_mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it is honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def memory_format(channels_last: bool) -> torch.memory_format:
    """NHWC (``channels_last``) or the default NCHW layout."""
    return torch.channels_last if channels_last else torch.contiguous_format


def cpu_has_fast_bf16() -> bool | None:
    """Whether this CPU runs bf16 convolutions and matrix products in hardware (on x86,
    AVX-512 or AMX), as oneDNN judges it; None where torch cannot say (no oneDNN)."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def bf16_emulated(device: torch.device) -> bool:
    """True on a CPU that oneDNN says has no bf16 arithmetic (False where it cannot say)."""
    return device.type == "cpu" and cpu_has_fast_bf16() is False


def amp_warning(device: torch.device, *, evaluating: bool = False) -> str | None:
    """The one-line warning for bf16 autocast on a CPU that would emulate it, or None;
    ``evaluating``: for evaluating a run that trained with ``amp=True``.

    bf16 emulated in software is several times slower than float32 (measured: BENCHMARKS.md,
    the CPU without AVX-512).
    """
    if not bf16_emulated(device):
        return None
    what, advice = (("the run trained with amp=True, and evaluating as it did", "pass fp32=True")
                    if evaluating else ("amp=True", "leave out amp=True"))
    return (f"this CPU has no bf16 arithmetic for oneDNN to use (on x86: AVX-512 or AMX), so "
            f"{what} emulates it and runs several times slower than fp32 here; {advice}")
