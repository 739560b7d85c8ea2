"""Reading tensors from files without running code from them.

``load_torch_file`` is ``torch.load(weights_only=True)``: a pickle that would build arbitrary
objects (and so could run code) is refused. ``load_safetensors`` reads the safetensors format,
which holds tensors and nothing else. Either reads only a regular file (a FIFO would block
the reader for good, a device would feed it without end) of a plausible size, and
``check_finite`` refuses weights that hold NaN or infinities. Every failure is a one-line
``CnnzooError``.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ._io import regular_file
from .errors import CnnzooError

def check_finite(tensors, path) -> None:
    """A one-line ``CnnzooError`` for a floating-point tensor of ``tensors`` (name -> tensor)
    that holds NaN or infinity: weights a model cannot compute with (float64 values beyond
    float32's range become infinities when loaded)."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CnnzooError(f"{path} is damaged: {name} holds NaN or infinite values "
                              f"(loaded as the model's dtype)")


def load_torch_file(path) -> object:
    """What ``torch.save`` wrote to ``path``, read with ``weights_only=True``."""
    path = regular_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise CnnzooError(f"{path} is missing") from error
    except Exception as error:  # UnpicklingError for unsafe content, others for corrupt files
        raise CnnzooError(_load_failure(Path(path), error)) from error


def load_safetensors(path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file."""
    from safetensors.torch import load_file

    path = regular_file(path)
    try:
        return load_file(str(path))
    except FileNotFoundError as error:
        raise CnnzooError(f"{path} is missing") from error
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise CnnzooError(f"{path} is not a valid safetensors file ({error})") from error


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _load_failure(path: Path, error: Exception) -> str:
    """One line for a file ``torch.load(weights_only=True)`` could not read. Its own message is a
    paragraph of advice on how to load the file anyway, which is the one thing not to do here."""
    text = _ANSI.sub("", str(error))
    if type(error).__name__ == "UnpicklingError":
        found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        detail = found.group(1).split(" was not an allowed")[0].strip() if found else "unknown"
        return (f"refusing to load {path}: the weights-only loader rejects it ({detail[:120]}); "
                f"it is damaged, or holds objects that could run code when loaded (cnnzoo never "
                f"writes such a file)")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = first.split(". ")[0].rstrip(".")  # torch's own advice follows the first sentence
    if len(first) < 12:  # a bare key or number says nothing without its exception's name
        first = f"{type(error).__name__} {first}".strip()
    return (f"cannot load {path}: {first[:160]}; the file is damaged or was not written by "
            f"torch.save")
