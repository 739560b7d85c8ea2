"""Safe files for a run: weights as safetensors, checkpoints that load without unpickling.

Both are written atomically (``cnnzoo._io``). Checkpoints hold only tensors and plain Python
values and are read back with ``torch.load(weights_only=True)``, which refuses to run code from
the file.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from safetensors.torch import save

from .._io import atomic_write_bytes
from ..errors import CnnzooError
from ..safeload import load_safetensors, load_torch_file


def _contiguous_state(state_dict) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share memory or are not contiguous
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}


def save_weights(path: Path, model: torch.nn.Module) -> None:
    """The model's state_dict (parameters and buffers) as a safetensors file, atomically."""
    atomic_write_bytes(path, save(_contiguous_state(model.state_dict())))


def load_weights(path: Path, model: torch.nn.Module) -> None:
    """Load a safetensors file written by ``save_weights`` into ``model`` (strict keys)."""
    load_state(model, load_safetensors(path), path)


def load_state(model: torch.nn.Module, state: dict, path) -> None:
    """``model.load_state_dict(state, strict=True)``, a mismatch as one line naming ``path``."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines or ["keys or shapes differ"])[0]
        raise CnnzooError(f"{path} does not fit this model: {detail[:200]}") from error


def save_checkpoint(path: Path, state: dict) -> None:
    """A training checkpoint (tensors and plain values only), written atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


# what a checkpoint written by the training loop holds, and the type of each entry
CHECKPOINT_ENTRIES = {"model": dict, "optimizer": dict, "scheduler": dict, "epoch": int,
                      "rng_cpu": torch.Tensor}


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint with ``weights_only=True``: a file that would run code is refused.

    Returns the dict ``save_checkpoint`` wrote (``CHECKPOINT_ENTRIES``: model and optimizer
    state, scheduler state, epoch, CPU random state). Anything else (a damaged file, a pickle
    with code in it, a dict of other things) raises a one-line ``CnnzooError``.
    """
    state = load_torch_file(path)
    if not isinstance(state, dict):
        raise CnnzooError(f"{path} is not a cnnzoo checkpoint (it holds a "
                          f"{type(state).__name__}, not a dict)")
    wrong = [key for key, kind in CHECKPOINT_ENTRIES.items()
             if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool)]
    if wrong or not all(isinstance(v, torch.Tensor) for v in state["model"].values()):
        what = (f"entries missing or of the wrong type: {', '.join(wrong)}" if wrong
                else "its model entry is not a dict of tensors")
        raise CnnzooError(f"{path} is not a cnnzoo checkpoint: {what}")
    return state
