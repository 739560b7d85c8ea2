"""One training step, run eagerly or replayed from a CUDA graph.

A step is forward, loss, backward, optional gradient clipping, the optimiser's step and the
learning-rate schedule's, with the loss and the correct predictions summed on the device (no
host read). Eager PyTorch spends some microseconds of Python and dispatch per operation, and a
small network's step is hundreds of short kernels: on a fast GPU the host, not the GPU, sets the
pace. With ``graph=True`` (CUDA only) the step is recorded once as a CUDA graph after a few
eager warm-up steps and then replayed with one launch per step: the batch is copied into the
graph's input tensors, everything else stays where the recording put it. The learning rate is a
device tensor then (``optim``), which the schedule fills between replays.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CnnzooError
from .pooling import use_tiled_pooling

GRAPH_WARMUP_STEPS = 3  # eager steps before recording: optimiser state, library workspaces


def check_graphs(device: torch.device, compile: bool = False, processes: int = 1) -> None:
    """Refuse CUDA graphs where they cannot run: off CUDA, with ``torch.compile``, or in a
    group of processes (torchrun)."""
    if device.type != "cuda":
        raise CnnzooError(f"cuda_graphs=True needs a CUDA device, not {device.type}")
    if compile:
        raise CnnzooError("cuda_graphs=True and compile=True do not go together; choose one")
    if processes > 1:
        raise CnnzooError("cuda_graphs=True is for one process; leave it out under torchrun")


class TrainStep:
    """Call it with a batch to train on it; ``totals()`` gives (loss sum, correct, examples,
    gradient-norm sum). Each step's gradient norm (the L2 norm of all gradients, before any
    clipping) is summed on the device; ``losses`` (a list, if set) receives each step's loss
    as a device tensor, for per-step logs read once per epoch.

    ``net`` takes the full-size batches (``batch_size`` examples) and ``eager_net`` (the same
    weights, never compiled or recorded) any other size, such as a short last batch. On the
    CPU the average pools whose windows tile their input get a faster backward pass
    (``training.pooling``; the same numbers).
    """

    def __init__(self, net: nn.Module, eager_net: nn.Module, optimizer, criterion, *,
                 batch_size: int, device: torch.device, amp: bool = False,
                 channels_last: bool = False, grad_clip: float | None = None,
                 scheduler=None, graph: bool = False):
        if graph:
            check_graphs(device)
        if device.type == "cpu":  # where it pays (BENCHMARKS.md); other devices keep their own
            use_tiled_pooling(eager_net)
        self.net, self.eager_net, self.optimizer = net, eager_net, optimizer
        self.criterion, self.batch_size, self.device = criterion, batch_size, device
        self.amp, self.grad_clip, self.scheduler = amp, grad_clip, scheduler
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.use_graph = graph
        # loss, correct, (seen), gradient norm: summed in float64 on the device
        self.sums = torch.zeros(4, device=device, dtype=torch.float64)
        self.losses: list | None = None
        self.seen = 0  # examples since begin(), counted on the host
        self.graph = None
        self.static_x = self.static_y = None
        self.loss = None  # the last step's loss (a graph's own output tensor once recorded)
        self.eager_steps = 0

    def begin(self) -> None:
        """Start summing afresh (once per epoch)."""
        self.sums.zero_()
        self.seen = 0

    def totals(self) -> torch.Tensor:
        """(loss sum, correct predictions, examples, gradient-norm sum) since ``begin``, one
        float64 tensor."""
        totals = self.sums.clone()
        totals[2] = self.seen
        return totals

    def __call__(self, x: torch.Tensor, y: torch.Tensor, weight: float = 1.0) -> None:
        """One step on (x, y); ``weight`` scales the loss that is differentiated (not the one
        summed): a rank's share of a short batch under torchrun, which runs eagerly as every
        short batch does (a full one has weight 1)."""
        full = len(y) == self.batch_size
        self.seen += len(y)
        if not (self.use_graph and full):
            self._eager(self.net if full else self.eager_net, x, y, weight)
        elif self.graph is not None:
            self.static_x.copy_(x)
            self.static_y.copy_(y)
            self.graph.replay()
        elif self.eager_steps < GRAPH_WARMUP_STEPS:
            self._warm_up(x, y)
        else:
            self._record(x, y)
            self.graph.replay()
        if self.losses is not None:
            self.losses.append(self.loss.clone())  # a recorded graph rewrites its own output
        if self.scheduler is not None:
            self.scheduler.step()

    def _body(self, net, x, y, weight: float = 1.0) -> None:
        # autocast's cache of cast weights must stay off in a recorded graph
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp,
                            cache_enabled=False if self.use_graph else None):
            out = net(x.contiguous(memory_format=self.layout))
            logits = out[0] if isinstance(out, tuple) else out
            loss = self.criterion(logits.float(), y)
        (loss if weight == 1 else loss * weight).backward()
        if self.grad_clip:
            norm = nn.utils.clip_grad_norm_(self.eager_net.parameters(), self.grad_clip)
        else:
            norm = nn.utils.get_total_norm(
                [p.grad for p in self.eager_net.parameters() if p.grad is not None])
        self.sums[3] += norm
        self.optimizer.step()
        self.loss = loss.detach()
        self.sums[0] += self.loss * y.numel()
        self.sums[1] += (logits.detach().argmax(dim=1) == y).sum()

    def _eager(self, net, x, y, weight: float = 1.0) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._body(net, x, y, weight)
        self.eager_steps += 1

    def _warm_up(self, x, y) -> None:
        # warm-up steps run on a side stream, as recording will
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self._eager(self.net, x, y)
        torch.cuda.current_stream(self.device).wait_stream(side)

    def _record(self, x, y) -> None:
        """Record one step on the graph's input tensors (recording runs nothing; the caller
        replays it for this batch)."""
        self.static_x, self.static_y = x.clone(), y.clone()
        self.optimizer.zero_grad(set_to_none=True)  # backward writes, not adds, from here on
        lr = getattr(self.optimizer, "lr", None)
        if not (isinstance(lr, torch.Tensor) and lr.device.type == "cuda"):
            raise CnnzooError("a recorded step needs the learning rate as a device tensor "
                              "(make the optimiser with graph=True)")
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._body(self.net, self.static_x, self.static_y)
