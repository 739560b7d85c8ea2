"""Safe files for a run: weights as safetensors, checkpoints that load without unpickling.

Both are written atomically (``cnnzoo._io``). Checkpoints hold only tensors and plain Python
values and are read back with ``torch.load(weights_only=True)``, which refuses to run code from
the file. Each records the SHA-256 of what it holds (``digest``; in a checkpoint its
``sha256`` entry, in a weights file its metadata), checked when it is read: a byte changed on
the disk is refused in one line instead of training on (a file that records no digest is
read as it is). Weights that hold NaN or infinities are refused too.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
from safetensors.torch import save

from .._io import atomic_write_bytes
from ..errors import CnnzooError
from ..safeload import check_finite, load_safetensors, load_torch_file


DIGEST = "sha256"  # the checkpoint's entry, and the weights file's metadata key
EPOCH = "epoch"    # the weights file's metadata key for the epoch it holds


def digest(value) -> str:
    """The SHA-256 of a checkpoint's or weights file's content: of every tensor's dtype, shape
    and bytes and every plain value's ``repr``, keys in sorted order, so that the same content
    gives the same digest however it was written."""
    hasher = hashlib.sha256()

    def feed(item) -> None:
        if isinstance(item, torch.Tensor):
            tensor = item.detach().to("cpu").contiguous()
            hasher.update(f"tensor {tensor.dtype} {tuple(tensor.shape)}|".encode())
            if tensor.numel():
                hasher.update(tensor.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(item, dict):
            hasher.update(b"{")
            for key in sorted(item, key=repr):
                hasher.update(f"{key!r}:".encode())
                feed(item[key])
            hasher.update(b"}")
        elif isinstance(item, (list, tuple)):
            hasher.update(b"[")
            for element in item:
                feed(element)
            hasher.update(b"]")
        else:
            hasher.update(f"{item!r}|".encode())

    feed(value)
    return hasher.hexdigest()


def check_digest(path, content, recorded) -> None:
    """A one-line ``CnnzooError`` when ``content`` is not what was written (``recorded``, its
    digest then; None for a file that records none)."""
    if recorded is not None and digest(content) != recorded:
        raise CnnzooError(f"{path} is damaged: what it holds is not what cnnzoo wrote (its "
                          f"SHA-256 differs from the one recorded in it)")


def _contiguous_state(state_dict) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share memory or are not contiguous
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}


def save_weights(path: Path, model: torch.nn.Module, epoch: int | None = None) -> None:
    """The model's state_dict (parameters and buffers) as a safetensors file with its digest
    (and the epoch whose weights they are, if given), atomically."""
    state = _contiguous_state(model.state_dict())
    metadata = {DIGEST: digest(state)}
    if epoch is not None:
        metadata[EPOCH] = str(epoch)
    atomic_write_bytes(path, save(state, metadata=metadata))


def saved_epoch(path: Path) -> int | None:
    """The epoch ``save_weights`` recorded in ``path``; None for a missing or unreadable file,
    or one that records none."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return int((handle.metadata() or {})[EPOCH])
    except Exception:  # OSError, a missing key, or safetensors' own error for a damaged file
        return None


def load_weights(path: Path, model: torch.nn.Module) -> None:
    """Load a safetensors file written by ``save_weights`` into ``model`` (strict keys), its
    digest checked."""
    from safetensors import safe_open

    state = load_safetensors(path)
    with safe_open(str(path), framework="pt") as handle:
        recorded = (handle.metadata() or {}).get(DIGEST)
    check_digest(path, state, recorded)
    load_state(model, state, path)


def load_state(model: torch.nn.Module, state: dict, path) -> None:
    """``model.load_state_dict(state, strict=True)``, a mismatch or weights that hold NaN or
    infinities (once in the model's dtype) as one line naming ``path``."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines or ["keys or shapes differ"])[0]
        raise CnnzooError(f"{path} does not fit this model: {detail[:200]}") from error
    check_finite(model.state_dict(), path)


def save_checkpoint(path: Path, state: dict) -> None:
    """A training checkpoint (tensors and plain values only) with its digest, written
    atomically."""
    state = dict(state, **{DIGEST: digest(state)})
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
    if state["epoch"] < 1:  # a checkpoint is written after an epoch ends
        raise CnnzooError(f"{path} is damaged: it claims epoch {state['epoch']}, where the "
                          f"first is 1")
    recorded = state.pop(DIGEST, None)
    check_digest(path, state, recorded)
    return state
