"""Why residual connections matter: the gradient each layer receives in one backward pass.

A deep plain stack multiplies the gradient by one layer's Jacobian per layer on its way down;
with sigmoid (whose slope is at most 1/4) the product shrinks geometrically and the first layers
barely learn. A residual block computes ``x + f(x)``, so the gradient also flows down the
identity path untouched. The picture compares the four combinations at the same depth, in the
spirit of He et al. 2016 (deep residual learning) and d2l's chapter on numerical stability.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CnnzooError
from ..plots import drawing, new_figure
from ._common import default_out
from .limits import MAX_DEPTH, check_limit

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
BATCH, IMAGE, CHANNELS = 32, 16, 16  # the demonstration stacks' input: 32 images of 1x16x16


class DeepStack(nn.Module):
    """A stem convolution, ``depth`` 3x3 convolutions of ``channels`` channels each followed
    by ``activation``, global average pooling and a linear classifier; with ``residual`` each
    3x3 layer adds its input to its output (``x + act(conv(x))``). Input (N, in_channels, H, W),
    output (N, num_classes). No normalisation layers, which would hide the effect."""

    def __init__(self, depth: int, activation: str = "relu", residual: bool = False,
                 channels: int = CHANNELS, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.residual = residual
        self.act = ACTIVATIONS[activation]()
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.layers = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1)
                                    for _ in range(depth))
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)  # d2l's initialisation
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem(x))
        for conv in self.layers:
            y = self.act(conv(x))
            x = x + y if self.residual else y
        return self.fc(x.mean(dim=(2, 3)))


def layer_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor
                         ) -> list[tuple[str, float]]:
    """(parameter name, L2 norm of its gradient) for every weight of two or more dimensions
    (convolution kernels, linear weights), input layer first, after one forward and backward
    pass of the cross-entropy of ``model(x)`` (N, K) against labels ``y`` (N,). The model's
    gradients are left as they were."""
    saved = {name: p.grad for name, p in model.named_parameters()}
    try:
        for p in model.parameters():
            p.grad = None
        with torch.enable_grad():
            nn.functional.cross_entropy(model(x), y).backward()
        return [(name, float(p.grad.norm())) for name, p in model.named_parameters()
                if p.dim() >= 2 and p.grad is not None]
    finally:
        for name, p in model.named_parameters():
            p.grad = saved[name]


def compare_stacks(depth: int = 30, seed: int = 0) -> dict[str, list[tuple[str, float]]]:
    """Layer gradient norms (``layer_gradient_norms``) of ``DeepStack`` plain and residual,
    sigmoid and ReLU, all of ``depth`` 3x3 layers, on one seeded batch of the synthetic data
    set; keyed 'plain, sigmoid', 'residual, sigmoid', 'plain, ReLU', 'residual, ReLU'.
    ``depth`` is 1 to ``MAX_DEPTH``."""
    from ..data import load_dataset

    check_limit("depth", depth, MAX_DEPTH, "each stack keeps every layer's activations for "
                                             "its backward pass")
    data = load_dataset("synthetic", split="train", num_samples=BATCH,
                        image_size=(1, IMAGE, IMAGE), seed=seed)
    x = data.images.float() / 255
    results = {}
    for activation, label in (("sigmoid", "sigmoid"), ("relu", "ReLU")):
        for residual in (False, True):
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                model = DeepStack(depth, activation, residual)
            key = f"{'residual' if residual else 'plain'}, {label}"
            results[key] = layer_gradient_norms(model, x, data.labels)
    return results


def model_gradients(name: str, seed: int = 0) -> list[tuple[str, float]]:
    """Layer gradient norms of the registered model ``name``, freshly built (seed ``seed``), in
    training mode, on a batch of 8 synthetic images at its default input size."""
    from ..data import load_dataset
    from ..inspect.shapes import build_for_input
    from ..models import model_info

    size = model_info(name).default_input_size()
    data = load_dataset("synthetic", split="train", num_samples=8, image_size=tuple(size),
                        seed=seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_for_input(name, size).train()
        return layer_gradient_norms(model, data.images.float() / 255, data.labels)


@drawing
def draw_gradients(curves: dict[str, list[tuple[str, float]]], title: str = ""):
    """Each layer's gradient norm divided by the last layer's, against the layer (input layer
    first), on a log scale: one line per entry of ``curves`` (label -> (parameter name, norm)
    list). Dividing by the last layer takes out how large each network's outputs happen to be,
    leaving what the backward pass does to the gradient on its way down."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(figsize=(7.5, 4.4))
    ax = fig.subplots()
    styles = ["-o", "--s", "-^", "--D", "-v", "--P"]
    for (label, norms), style in zip(curves.items(), styles):
        values = [max(value, 1e-300) for _, value in norms]  # an exact zero still plots
        relative = [value / values[-1] for value in values]
        ax.semilogy(range(1, len(values) + 1), relative, style, ms=3, lw=1.2,
                    label=f"{label}: first layer {relative[0]:.1e}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (1 = next to the input)")
    ax.set_ylabel("gradient norm / last layer's")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title or "gradient per layer after one backward pass", fontsize=10)
    fig.tight_layout()
    return fig


def show_gradients(name: str | None = None, *, depth: int | None = None, seed: int = 0,
                   out=None, force: bool = False) -> Path:
    """Draw the gradient norm of every layer after one backward pass and write the picture to
    ``out`` (default ``gradients.png`` or ``gradients-NAME.png`` here); returns the path. With
    no ``name``: plain against residual stacks of ``depth`` layers (default 30), sigmoid against
    ReLU (``compare_stacks``); with a registered model's ``name``: that model's layers, which
    takes no ``depth``."""
    from ..plots import figure_file, save_figure

    out = figure_file(out, force=force)
    if name is not None and depth is not None:
        raise CnnzooError(f"depth={depth} sets the depth of the compared stacks; {name} has "
                          f"its own layers: leave out depth= or {name}")
    if name is None:
        depth = 30 if depth is None else depth
        curves = compare_stacks(depth, seed)
        title = (f"{depth + 2} layers ({depth} 3x3 convolutions of {CHANNELS} channels), "
                 f"Xavier init, one batch: gradient norm per layer")
        path = out or default_out(".", "gradients")
    else:
        curves = {name: model_gradients(name, seed)}
        title = f"{name}, freshly built (seed {seed}): gradient norm per layer, one batch"
        path = out or default_out(".", f"gradients-{name}")
    save_figure(draw_gradients(curves, title), path)
    return path
