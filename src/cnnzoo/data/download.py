"""Fetching data files: the cache directory, a checked download, and a safe archive extraction.

A download streams into a temporary file beside its destination, is checked against the MD5 the
data set's authors publish, and only then is renamed into place, so an interrupted or corrupted
transfer never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Sequence

from .._io import atomic_file
from ..errors import CnnzooError
from .errors import CorruptDataError

TIMEOUT_S = 30.0
_CHUNK = 1 << 20


class DownloadFailed(Exception):
    """Every mirror failed; the message gives one reason per mirror (internal to cnnzoo.data)."""


def cache_root() -> Path:
    """Where downloaded data sets are kept: ``$CNNZOO_DATA``, else ``$XDG_CACHE_HOME/cnnzoo``,
    else ``~/.cache/cnnzoo``; each data set gets a subdirectory named after it."""
    if os.environ.get("CNNZOO_DATA"):
        return Path(os.environ["CNNZOO_DATA"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "cnnzoo"


def md5_of(path: str | Path) -> str:
    """Hex MD5 of a file's bytes (the checksum the data sets publish; integrity, not security)."""
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(urls: Sequence[str], destination: str | Path, md5: str,
             timeout: float = TIMEOUT_S) -> Path:
    """Fetch the first of ``urls`` that answers and matches ``md5`` into ``destination``.

    Writes atomically (temporary file, then rename). Raises ``DownloadFailed`` listing each URL's
    failure when none works; nothing is left behind then.
    """
    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file where the folder, or one above it, should be
        raise DownloadFailed(f"cannot make the folder {destination.parent} "
                             f"({error.strerror or error})") from error
    failures = []
    for url in urls:
        try:
            with atomic_file(destination, suffix=".part") as (out, _):
                digest = hashlib.md5()
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    while chunk := response.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != md5:  # not kept: the temporary file goes
                    raise _Mismatch(f"{url}: MD5 {digest.hexdigest()}, expected {md5}")
            return destination
        except _Mismatch as mismatch:
            failures.append(str(mismatch))
        except CnnzooError as error:  # a folder that takes no file: a read-only medium
            raise DownloadFailed(str(error)) from error
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            failures.append(f"{url}: {reason}")
    raise DownloadFailed("; ".join(failures))


class _Mismatch(Exception):
    """A download whose MD5 is not the published one."""


def extract_members(archive: str | Path, prefix: str, names: Sequence[str],
                    target: str | Path) -> Path:
    """Copy the regular files ``prefix/NAME`` for each of ``names`` out of a tar archive into the
    directory ``target``, which appears only once all of them are written.

    Only the named members are read, so paths such as ``../x`` or links inside the archive are
    never written anywhere. Raises ``CorruptDataError`` for an unreadable archive or a missing
    member.
    """
    archive, target = Path(archive), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with tarfile.open(archive, "r:*") as tar:
            for name in names:
                try:
                    member = tar.getmember(f"{prefix}/{name}")
                except KeyError as error:
                    raise CorruptDataError(f"{archive}: has no file {prefix}/{name}") from error
                if not member.isfile():
                    raise CorruptDataError(f"{archive}: {prefix}/{name} is not a regular file")
                with tar.extractfile(member) as source, open(staging / name, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
        os.replace(staging, target)
        return target
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise CorruptDataError(f"{archive}: cannot be unpacked ({error})") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
