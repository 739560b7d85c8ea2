"""``deterministic=True``: a run computed with torch's deterministic algorithms only.

Seeds, data order and augmentation are seeded in every run already (``prepare``, ``data``);
what varies between two runs of one configuration on one machine is then the order in which
some kernels add numbers (atomic adds on a GPU, cuDNN's choice of algorithm by timing, cuBLAS's
split reductions). ``deterministic`` turns those off for the block it guards, and puts back
what it found after: ``torch.use_deterministic_algorithms(True)``, cuDNN without benchmarking
and in its deterministic mode, and cuBLAS with a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``,
set where unset; cuBLAS reads it when the process first uses it, so it takes effect in a
process that has done no CUDA matrix product before the block, as a ``cnnzoo train`` process
has not, and otherwise must be set in the environment beforehand). An operation with no
deterministic version is one line naming it.
"""

from __future__ import annotations

import contextlib
import os
import re

from ..errors import CnnzooError

CUBLAS_WORKSPACE = ":4096:8"  # what CUDA's documentation gives for reproducible cuBLAS
_NO_DETERMINISTIC = re.compile(r"(\S+) does not have a deterministic implementation")


@contextlib.contextmanager
def deterministic(enabled: bool = True):
    """Within the block, torch's deterministic algorithms only (nothing changes where
    ``enabled`` is False); an operation without one raises a one-line ``CnnzooError``."""
    if not enabled:
        yield
        return
    import torch

    cudnn = torch.backends.cudnn
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             cudnn.benchmark, cudnn.deterministic, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    cudnn.benchmark, cudnn.deterministic = False, True
    try:
        yield
    except RuntimeError as error:
        operation = nondeterministic_operation(error)
        if operation is None:
            raise
        raise CnnzooError(f"deterministic=True: {operation} has no deterministic version on "
                          f"this device; train without deterministic=, or on the CPU"
                          ) from error
    finally:
        enabled_before, warn_only, cudnn.benchmark, cudnn.deterministic, workspace = saved
        torch.use_deterministic_algorithms(enabled_before, warn_only=warn_only)
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = workspace


def nondeterministic_operation(error: BaseException) -> str | None:
    """The operation torch names in its error for one without a deterministic version
    (``adaptive_max_pool2d_backward_cuda does not have a deterministic implementation, but
    you set 'torch.use_deterministic_algorithms(True)'...``), or None for another error."""
    # torch's error may come wrapped (by a compiler's or a hook's error): its causes are read
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        match = _NO_DETERMINISTIC.search(str(error))
        if match:
            return match.group(1)
        error = error.__cause__ or error.__context__
    return None
