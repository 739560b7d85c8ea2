"""Packages whose public names are imported on first use (PEP 562), so that importing the
package, or a light module inside it, does not import torch; and modules imported ahead of
their use, beside other work."""

from __future__ import annotations

import importlib
import threading


def lazy_exports(package: str, exports: dict[str, str]):
    """``__getattr__`` and ``__dir__`` for ``package``, whose public ``exports`` map each name
    to the module that defines it (absolute, or relative to ``package`` with a leading dot)."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted({*namespace, *exports})

    return __getattr__, __dir__


def import_in_background(module: str) -> threading.Thread:
    """Start importing ``module`` on a daemon thread, so that it is ready (or nearly) when first
    used. Importing is pure Python that would otherwise run after the work; beside work that
    leaves the interpreter free (decompression, device kernels, waits on a GPU) it costs little.
    A failure is left for the first use to raise where it can be reported."""

    def load() -> None:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the real import, in the caller, reports it
            pass

    thread = threading.Thread(target=load, name=f"import {module}", daemon=True)
    thread.start()
    return thread
