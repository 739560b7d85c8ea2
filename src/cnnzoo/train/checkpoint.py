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
from safetensors.torch import load_file, save

from ..errors import CnnzooError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise CnnzooError(f"cannot write in {path.parent}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise CnnzooError(f"cannot write {path}: {error.strerror}; the previous file is kept"
                          ) from None
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
    try:
        state = load_file(str(path))
    except FileNotFoundError:
        raise CnnzooError(f"{path} is missing") from None
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise CnnzooError(f"{path} is not a valid safetensors file ({error})") from None
    _load_state(model, state, path)


def _load_state(model, state, path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CnnzooError(f"{path} does not fit this model: {first}") from None


def save_checkpoint(path: Path, state: dict) -> None:
    """A training checkpoint (tensors and plain values only), written atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint with ``weights_only=True``: a file that would run code is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CnnzooError(f"{path} is missing") from None
    except Exception as error:  # UnpicklingError for unsafe content, others for corrupt files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CnnzooError(f"refusing to load {path}: {reason[:200]}") from None
