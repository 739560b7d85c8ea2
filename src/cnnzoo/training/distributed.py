"""Data-parallel training under ``torchrun``, on PyTorch's own distributed engine.

``torchrun --nproc_per_node=N -m cnnzoo train ...`` starts N processes with RANK, WORLD_SIZE and
LOCAL_RANK set; ``setup()`` joins them into one process group (NCCL on GPUs, gloo on the CPU).
Every rank draws the same permutation each epoch and takes its slice of every global batch (a
short last one too, each slice's loss weighted by its share of it), so the global batch is what
the user asked for and the gradient (averaged by DistributedDataParallel) is that of the
single-process run. Not quite where a layer looks across the batch or draws random numbers:
BatchNorm normalises each slice apart on the CPU (on GPUs it is made SyncBatchNorm, which torch
has for them only), and dropout draws its masks per rank. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import CnnzooError


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def from_environment() -> Context:
    """The torchrun context of this process; a single process when torchrun did not start it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    return Context(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(context: Context, device: torch.device) -> torch.device:
    """Join the process group; returns this rank's device (its own GPU under CUDA)."""
    if not context.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def teardown(context: Context) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(context: Context, tensor: torch.Tensor) -> torch.Tensor:
    """Sum a metric tensor over the ranks (in place); a no-op in a single process."""
    if context.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast(context: Context, value):
    """Rank 0's value of a small Python object (a path, a configuration) on every rank."""
    if not context.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(context: Context) -> None:
    if context.enabled:
        dist.barrier()


def check_batch_size(context: Context, batch_size: int) -> int:
    """The per-rank batch size for a global ``batch_size``; it must split evenly."""
    if batch_size % context.world_size:
        raise CnnzooError(f"batch_size={batch_size} does not split over {context.world_size} "
                          f"processes; choose a multiple of {context.world_size}")
    return batch_size // context.world_size


def check_last_batch(context: Context, images: int, batch_size: int) -> None:
    """Every rank must take at least one image of the last global batch, a short one too: a
    rank without a slice would leave the others waiting for its gradient."""
    last = images % batch_size
    if 0 < last < context.world_size:
        raise CnnzooError(f"the last batch of the {images:,} training images holds {last}, too "
                          f"few to give each of the {context.world_size} processes one; choose "
                          f"another batch_size= (or train_subset=)")


def check_eval_set(context: Context, images: int, name: str = "test") -> None:
    """Every rank evaluates a slice of an evaluation set (``name``: "test" or "validation"),
    so it needs an image for each."""
    if images < context.world_size:
        raise CnnzooError(f"the {name} set holds {images} image{'s' * (images != 1)}, fewer "
                          f"than the {context.world_size} processes that evaluate it; use "
                          f"fewer processes or more {name} images")
