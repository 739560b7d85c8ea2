"""Safe files: atomic writes, weights as safetensors, checkpoints that load without unpickling.

Every file is written to a temporary name in the same folder, flushed to disk, then renamed over
the old one, so a process killed at any moment leaves either the old file or the new one, never
half of one. Checkpoints hold only tensors and plain Python values and are read back with
``torch.load(weights_only=True)``, which refuses to run code from the file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save

from ..errors import CnnzooError
from ..safeload import load_safetensors, load_torch_file


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


# mkstemp makes files only their owner may read; a written file gets what open() would give it
NEW_FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.

    A new file gets the usual permissions (0666 less the umask); a replaced one keeps its own.
    """
    path = Path(path)
    try:
        mode, existed = path.stat().st_mode & 0o777, True
    except OSError:
        mode, existed = NEW_FILE_MODE, False
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise CnnzooError(f"cannot write in {path.parent}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:  # Ctrl-C too: never leave the temporary file behind
        Path(tmp).unlink(missing_ok=True)
        if not isinstance(error, OSError):
            raise
        kept = "; the previous file is kept" if existed else ""
        raise CnnzooError(f"cannot write {path}: {error.strerror or error}{kept}") from None
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CnnzooError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CnnzooError(f"{path} is not valid JSON ({error})") from None


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
        raise CnnzooError(f"{path} does not fit this model: {detail[:200]}") from None


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
