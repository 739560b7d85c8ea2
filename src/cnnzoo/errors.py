"""The one exception type a user of cnnzoo is meant to read.

Everything that is the user's mistake (an unknown model, an input too small, a corrupt file, a bad
flag) raises a ``CnnzooError`` whose message is one line that says what is wrong and, where it
can, what to do. The command line prints that line and exits with status 2; it never shows a
traceback for these.
"""

import contextlib


class CnnzooError(Exception):
    """A user-facing error with a one-line message."""


class CnnzooWarning(UserWarning):
    """A note for the user that does not stop the work; the command line prints it as one line,
    ``cnnzoo: warning: ...``."""


class UnknownModelError(CnnzooError, LookupError):
    """A model name that is not in the registry."""


class SizeError(CnnzooError, ValueError):
    """A size given in the wrong form: not whole numbers, too few or too many, below 1."""


class InputTooSmallError(CnnzooError, ValueError):
    """An input whose spatial size reaches zero somewhere inside a model; ``smallest`` is the
    smallest input (C, H, W) that works, where the code that raised it knows it."""

    def __init__(self, message: str, smallest: tuple[int, int, int] | None = None):
        super().__init__(message)
        self.smallest = smallest


def refused_memory(error: BaseException) -> bool:
    """Whether ``error`` is the memory allocator refusing a request: a ``MemoryError``, torch's
    ``RuntimeError`` for a tensor too large to allocate (or even to size), or its ``TypeError``
    for a size beyond a 64-bit integer."""
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    if isinstance(error, TypeError):
        return "Overflow when unpacking long" in text
    return isinstance(error, RuntimeError) and (
        "allocate" in text or "Storage size calculation overflowed" in text)


@contextlib.contextmanager
def out_of_memory_as(message: str):
    """Inside the block, the allocator refusing memory (``refused_memory``) becomes
    ``CnnzooError(message)``: a model or an input made for a size the user gave that is too
    large to hold is one line, not a traceback. Any other error passes through."""
    try:
        yield
    except (RuntimeError, MemoryError, TypeError) as error:
        if not refused_memory(error):
            raise
        raise CnnzooError(message) from error
