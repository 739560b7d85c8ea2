"""The recipes' optimisers and learning-rate schedule, kept out of ``torch.optim``'s classes.

Every method of a ``torch.optim.Optimizer`` is wrapped to keep ``torch.compile`` out of it, and
the first call of any of them imports ``torch._dynamo``: about a second per process on a small
CPU, as long as importing torch itself.
``SGD`` and ``AdamW`` here hold their parameters, state and learning rate themselves and call
torch's functional updates, ``torch.optim.sgd.sgd`` and ``torch.optim.adamw.adamw``: the very
functions ``torch.optim.SGD`` and ``torch.optim.AdamW`` call, with the same arguments, so the
numbers are the same (tested). Their ``state_dict`` has ``torch.optim``'s layout, so checkpoints
load either way.

With ``graph=True`` (a step to record as a CUDA graph) the learning rate is a tensor on the
parameters' device that ``set_lr`` fills in place, so that a recorded step reads the current
rate and setting it reads nothing back from the device; on CUDA, AdamW's step counts live on
the device too (torch's ``capturable``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.adamw import adamw
from torch.optim.sgd import sgd

from ..errors import CnnzooError
from ..geometry import whole_number
from .recipes import Recipe


class _Optimizer:
    """One group of parameters, their per-parameter state and one learning rate."""

    def __init__(self, params, lr: float, fused: bool, graph: bool):
        self.params = list(params)  # frozen ones too: the state's indices are torch.optim's
        if not self.params:
            raise CnnzooError("the model has no parameters")
        self.fused = fused or None  # None: torch's default (foreach on CUDA, a loop elsewhere)
        self.lr = torch.tensor(float(lr), device=self.params[0].device) if graph else lr
        self.state: dict[nn.Parameter, dict] = {}

    def set_lr(self, lr: float) -> None:
        if isinstance(self.lr, torch.Tensor):
            self.lr.fill_(lr)
        else:
            self.lr = lr

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _with_grads(self):
        """The parameters that have a gradient, and their gradients (torch.optim skips the
        others too)."""
        params = [p for p in self.params if p.grad is not None]
        return params, [p.grad for p in params]

    def _hyper(self) -> dict:
        """The group's settings as ``torch.optim`` names them (for its state-dict layout)."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """``torch.optim``'s layout: state by parameter index, one parameter group."""
        index = {p: i for i, p in enumerate(self.params)}
        lr = float(self.lr) if isinstance(self.lr, torch.Tensor) else self.lr
        return dict(state={index[p]: dict(s) for p, s in self.state.items()},
                    param_groups=[dict(self._hyper(), lr=lr,
                                       params=list(range(len(self.params))))])

    def load_state_dict(self, state: dict) -> None:
        """Take the state ``state_dict`` (or ``torch.optim``'s) wrote for these parameters;
        the learning rate is the schedule's to set."""
        groups, entries = state.get("param_groups", []), state.get("state", {})
        if not (isinstance(groups, list) and all(isinstance(g, dict) and isinstance(
                g.get("params", []), list) for g in groups) and isinstance(entries, dict)):
            raise CnnzooError("the checkpoint's optimiser state is not torch.optim's layout")
        count = sum(len(group.get("params", ())) for group in groups)
        if count != len(self.params):
            raise CnnzooError(f"the checkpoint's optimiser holds {count} parameters, the model "
                              f"{len(self.params)}")
        loaded = {}
        for i, saved in entries.items():
            if not (isinstance(i, int) and 0 <= i < count and isinstance(saved, dict)):
                raise CnnzooError(f"the checkpoint's optimiser state has an entry {i!r} that "
                                  f"is no parameter of the model")
            if sorted(saved) != sorted(self.STATE):  # another optimiser's, or damaged
                raise CnnzooError(f"the checkpoint's optimiser state of parameter {i} holds "
                                  f"{', '.join(map(str, saved)) or 'nothing'}, where "
                                  f"{type(self).__name__} keeps {', '.join(self.STATE)}")
            p = self.params[i]
            loaded[p] = {name: self._placed(name, value, p) for name, value in saved.items()}
        self.state = loaded

    def _placed(self, name: str, value, p: torch.Tensor):
        if not (isinstance(value, torch.Tensor) and value.is_floating_point()
                and bool(torch.isfinite(value).all())):
            raise CnnzooError(f"the checkpoint's optimiser state {name!r} is not a tensor of "
                              f"finite numbers")
        if value.shape != p.shape:
            raise CnnzooError(f"the checkpoint's optimiser state {name!r} has shape "
                              f"{tuple(value.shape)}, its parameter {tuple(p.shape)}")
        return value.to(p.device, p.dtype, copy=True)  # never shared with the caller's


class SGD(_Optimizer):
    """SGD with optional (Nesterov) momentum and L2 weight decay, as ``torch.optim.SGD``."""

    STATE = ("momentum_buffer",)  # what the state of each parameter holds

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, *, fused: bool = False, graph: bool = False):
        super().__init__(params, lr, fused, graph)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.nesterov = nesterov and momentum > 0

    def _hyper(self) -> dict:
        return dict(momentum=self.momentum, dampening=0.0, weight_decay=self.weight_decay,
                    nesterov=self.nesterov, maximize=False, foreach=None, differentiable=False,
                    fused=self.fused)

    @torch.no_grad()
    def step(self) -> None:
        params, grads = self._with_grads()
        buffers = [self.state.get(p, {}).get("momentum_buffer") for p in params]
        sgd(params, grads, buffers, fused=self.fused, weight_decay=self.weight_decay,
            momentum=self.momentum, lr=self.lr, dampening=0.0, nesterov=self.nesterov,
            maximize=False)
        if self.momentum:  # the first step creates the buffers
            for p, buffer in zip(params, buffers):
                self.state.setdefault(p, {})["momentum_buffer"] = buffer


class AdamW(_Optimizer):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW`` (betas 0.9, 0.999; eps 1e-8)."""

    betas, eps = (0.9, 0.999), 1e-8
    STATE = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float, weight_decay: float = 0.01, *, fused: bool = False,
                 graph: bool = False):
        super().__init__(params, lr, fused, graph)
        self.weight_decay = weight_decay
        self.capturable = graph and self.params[0].device.type == "cuda"

    def _hyper(self) -> dict:
        return dict(betas=self.betas, eps=self.eps, weight_decay=self.weight_decay,
                    amsgrad=False, foreach=None, maximize=False, capturable=self.capturable,
                    differentiable=False, fused=self.fused, decoupled_weight_decay=True)

    def _placed(self, name: str, value, p: torch.Tensor):
        if name == "step":  # a float32 count: on the device when fused or recorded
            if not (isinstance(value, torch.Tensor) and value.numel() == 1
                    and bool(torch.isfinite(value).all()) and float(value) >= 0):
                raise CnnzooError("the checkpoint's optimiser state 'step' is not a count")
            on_device = self.capturable or self.fused
            return value.to(p.device if on_device else "cpu", torch.float32, copy=True)
        return super()._placed(name, value, p)

    def _new_state(self, p: torch.Tensor) -> dict:
        on_device = self.capturable or self.fused
        return dict(step=torch.zeros((), dtype=torch.float32,
                                     device=p.device if on_device else "cpu"),
                    exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                    exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format))

    @torch.no_grad()
    def step(self) -> None:
        params, grads = self._with_grads()
        for p in params:
            if p not in self.state:  # the first step creates the state
                self.state[p] = self._new_state(p)
        states = [self.state[p] for p in params]
        adamw(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
              [], [s["step"] for s in states], capturable=self.capturable, fused=self.fused,
              amsgrad=False, beta1=self.betas[0], beta2=self.betas[1], lr=self.lr,
              weight_decay=self.weight_decay, eps=self.eps, maximize=False)


def make_optimizer(recipe: Recipe, model: nn.Module, device: torch.device,
                   graph: bool = False) -> SGD | AdamW:
    """The recipe's optimiser, fused on CUDA; with ``graph`` its step can be recorded in a CUDA
    graph (its learning rate a device tensor, AdamW's state on the device)."""
    fused = device.type == "cuda"
    if recipe.optimizer == "adamw":
        return AdamW(model.parameters(), recipe.lr, recipe.weight_decay, fused=fused,
                     graph=graph)
    return SGD(model.parameters(), recipe.lr, recipe.momentum, recipe.nesterov,
               recipe.weight_decay, fused=fused, graph=graph)


def lr_factor(recipe: Recipe, step: int, total_steps: int) -> float:
    """The schedule: multiplier of the peak learning rate at a given optimiser step."""
    if recipe.schedule == "constant":
        return 1.0
    warmup = int(recipe.warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Schedule:
    """Sets the optimiser's learning rate to the recipe's peak times ``lr_factor`` before
    every step: ``step()`` after each optimiser step moves it on. Its state is the count of
    steps taken (``last_epoch``, as ``torch.optim.lr_scheduler.LambdaLR`` names it)."""

    def __init__(self, optimizer: _Optimizer, recipe: Recipe, total_steps: int):
        self.optimizer, self.recipe, self.total_steps = optimizer, recipe, total_steps
        self.steps = 0
        self._apply()

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0 first), as the schedule sets it."""
        return self.recipe.lr * lr_factor(self.recipe, step, self.total_steps)

    def _apply(self) -> None:
        self.optimizer.set_lr(self.lr_at(self.steps))

    def step(self) -> None:
        self.steps += 1
        self._apply()

    def state_dict(self) -> dict:
        return dict(last_epoch=self.steps)

    def load_state_dict(self, state: dict) -> None:
        steps = state.get("last_epoch") if isinstance(state, dict) else None
        if not (whole_number(steps) and 0 <= steps <= self.total_steps):
            raise CnnzooError(f"the checkpoint's schedule is at step {steps!r}, where this run "
                              f"has 0 to {self.total_steps}")
        self.steps = int(steps)
        self._apply()
