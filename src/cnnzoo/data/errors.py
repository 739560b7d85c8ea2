"""The two ways loading a data set goes wrong for the user: it is not there, or a file is damaged.

Both are ``CnnzooError``s with a one-line message, so the command line prints them as
``cnnzoo: error: ...``; they also subclass the matching built-in error, for callers that catch it.
"""

from __future__ import annotations

from ..errors import CnnzooError


class DataSetNotFoundError(CnnzooError, FileNotFoundError):
    """A data set that is in none of the places cnnzoo looks, and could not be downloaded."""


class CorruptDataError(CnnzooError, ValueError):
    """A data file whose contents are not what its format promises; the message names the file."""
