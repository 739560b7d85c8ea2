"""Files written whole or not at all: the one atomic write that every file cnnzoo writes goes
through (checkpoints, weights, configurations, pictures, reports, exports, downloads, the
fast-path cache).

A file is written under a temporary name in its own folder, flushed to disk, then renamed over
the old one, so a process killed at any moment leaves either the old file or the new one, never
half of one, and a reader never sees a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import CnnzooError


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


# mkstemp makes files only their owner may read; a written file gets what open() would give it
NEW_FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_file(path, *, suffix: str = ".tmp") -> Iterator[tuple[BinaryIO, Path]]:
    """A temporary file beside ``path`` for the block to fill, as ``(handle, name)``: written
    through the open binary ``handle``, or by name once the block has closed it (a library that
    writes to a path: ``suffix`` ends the name, for an exporter that insists on ".pt2"). When
    the block ends without an error the file is flushed to disk and renamed over ``path``;
    otherwise it is removed.

    A new file gets the usual permissions (0666 less the umask); a replaced one keeps its own.
    A folder that takes no file, or a flush or rename the system refuses (a full disk), is one
    ``CnnzooError`` line naming the file, the previous file (if any) kept; an error of the
    block's own is the block's, raised as it came.
    """
    path = Path(path)
    try:
        mode, existed = path.stat().st_mode & 0o777, True
    except OSError:
        mode, existed = NEW_FILE_MODE, False
    _remove_orphans(path, suffix)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=suffix,
                                    dir=path.parent)
    except OSError as error:
        raise refused(path, error, existed) from error
    temporary = Path(name)
    handle = os.fdopen(fd, "wb")
    try:
        yield handle, temporary
        try:
            if handle.closed:  # written by name: opened again to reach the disk
                handle = open(temporary, "rb+")
            handle.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
            handle.close()
            os.replace(temporary, path)
        except OSError as error:
            raise refused(path, error, existed) from error
    except BaseException:  # Ctrl-C too: never leave the temporary file behind
        with contextlib.suppress(OSError):
            handle.close()
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_dir(path.parent)


def _remove_orphans(path: Path, suffix: str) -> None:
    """Remove the temporary files of ``path`` that a killed process left (SIGKILL, a power cut:
    nothing ran to remove them). Each one's name holds its writer's process id, so a file that
    another process is writing now is left alone."""
    prefix = f".{path.name}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(suffix)):
                continue
            pid, dash, _ = name[len(prefix):].partition("-")
            if dash and pid.isdigit() and not _alive(int(pid)) and entry.is_file(
                    follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's, or no such id
        return True
    return True


def refused(path: Path, error: OSError, existed: bool) -> CnnzooError:
    """The one line for a write of ``path`` that the system refused."""
    kept = "; the previous file is kept" if existed else ""
    return CnnzooError(f"cannot write {path}: {error.strerror or error}{kept}")


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


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (``atomic_file``); a write the system refuses is
    one ``CnnzooError`` line naming the file."""
    path = Path(path)
    existed = path.exists()
    with atomic_file(path) as (handle, _):
        try:
            handle.write(data)
        except OSError as error:
            raise refused(path, error, existed) from error


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


WEIGHTS_LIMIT = 8 << 30  # bytes: the zoo's largest model (VGG-19, 548 MiB) many times over
TEXT_LIMIT = 64 << 20  # bytes: a configuration or a table of metrics, many times over


def regular_file(path, limit: int = WEIGHTS_LIMIT) -> Path:
    """``path`` when it names a regular file (a link to one included) of at most ``limit``
    bytes; a one-line ``CnnzooError`` for a missing file, a FIFO, a device or a folder, which
    are never opened."""
    path = Path(path)
    try:
        status = os.stat(path)
    except FileNotFoundError as error:
        raise CnnzooError(f"{path} is missing") from error
    except OSError as error:
        raise CnnzooError(f"cannot read {path}: {error.strerror or error}") from error
    if not stat.S_ISREG(status.st_mode):
        kind = ("a folder" if stat.S_ISDIR(status.st_mode) else
                "a FIFO" if stat.S_ISFIFO(status.st_mode) else "a device or socket")
        raise CnnzooError(f"{path} is {kind}, not a file; cnnzoo reads only regular files")
    if status.st_size > limit:
        raise CnnzooError(f"{path} is {status.st_size:,} bytes, more than the {limit:,} a file "
                          f"of cnnzoo's may hold; it is not one")
    return path


def check_target(path, *, force: bool = False, parameter: str = "out",
                 protected=None) -> Path:
    """``path`` when a file may be written there: a new name, or an existing regular file with
    ``force``. A link, a device, a FIFO or a folder is never written over (an atomic rename
    would put a file in place of the link or the device), nor a file ``protected(path)`` says
    belongs to something else (a run's own checkpoint); each is one ``CnnzooError`` line that
    names ``parameter``."""
    path = Path(path)
    shown = f"{parameter}={str(path)!r}"
    if path.is_symlink():
        raise CnnzooError(f"{shown} is a link; give the file itself, or another name")
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file (a device or a FIFO)"
        raise CnnzooError(f"{shown} is {kind}; give the name of a file to write")
    if protected is not None and protected(path):
        raise CnnzooError(f"{shown} is a run's own file; write elsewhere")
    if path.exists() and not force:
        raise CnnzooError(f"{shown} exists; pass force=True to replace it")
    if not path.parent.is_dir():
        raise CnnzooError(f"{shown}: there is no folder {path.parent}; create it or write "
                          f"elsewhere")
    return path


def read_json(path):
    """A JSON file's value; a missing, malformed, oversized or not regular file is one
    ``CnnzooError`` line."""
    path = regular_file(path, TEXT_LIMIT)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise CnnzooError(f"{path} is missing") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CnnzooError(f"{path} is not valid JSON ({error})") from error
