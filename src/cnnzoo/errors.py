"""The one exception type a user of cnnzoo is meant to read.

Everything that is the user's mistake (an unknown model, an input too small, a corrupt file, a bad
flag) raises a ``CnnzooError`` whose message is one line that says what is wrong and, where it
can, what to do. The command line prints that line and exits with status 2; it never shows a
traceback for these.
"""


class CnnzooError(Exception):
    """A user-facing error with a one-line message."""


class UnknownModelError(CnnzooError, LookupError):
    """A model name that is not in the registry."""


class InputTooSmallError(CnnzooError, ValueError):
    """An input whose spatial size reaches zero somewhere inside a model; ``smallest`` is the
    smallest input (C, H, W) that works, where the code that raised it knows it."""

    def __init__(self, message: str, smallest: tuple[int, int, int] | None = None):
        super().__init__(message)
        self.smallest = smallest
