"""What the pictures share: finding layers by name, capturing their outputs, tiling maps."""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import CnnzooError

LISTED = 24  # layer names an error message lists before it says how many more there are


def pick_layer(model: nn.Module, name: str, candidates: list[str], what: str) -> nn.Module:
    """The module called ``name`` among ``candidates`` (names from ``model.named_modules``);
    a one-line ``CnnzooError`` listing the candidates when it is not one of them."""
    if name in candidates:
        return dict(model.named_modules())[name]
    if not candidates:
        raise CnnzooError(f"this model has no {what}")
    close = difflib.get_close_matches(name, candidates, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    shown = ", ".join(candidates[:LISTED])
    more = f", ... ({len(candidates)} in all)" if len(candidates) > LISTED else ""
    raise CnnzooError(f"no {what} named {name!r} in this model; {hint}choose one of: "
                      f"{shown}{more}")


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the 2-d convolutions of ``model``, in definition order."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def map_layers(model, input_size) -> list[str]:
    """Names of every module whose output is a feature map (N, C, H, W), in call order."""
    from ..inspect.shapes import trace_shapes

    names = []
    for row in trace_shapes(model, input_size):
        if row.name and row.output_shape is not None and len(row.output_shape) == 4:
            if row.name not in names:
                names.append(row.name)
    return names


def capture(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``x`` and return the output of each module in ``names`` (its last call
    when a module runs twice), as the tensors the forward made (still in the autograd graph
    when gradients are on); the name ``""`` is the model itself, so its output."""
    modules = dict(model.named_modules())
    outputs: dict[str, torch.Tensor] = {}

    def hook_for(name):
        def hook(module, args, output):
            outputs[name] = output
        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in names]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def as_picture(image) -> np.ndarray:
    """An image tensor (C, H, W) with C 1 or 3, uint8 or float, as an array for ``imshow``:
    (H, W) or (H, W, 3) in [0, 1]. Floats are scaled from their own range (normalised inputs)."""
    array = torch.as_tensor(image).detach().cpu()
    if array.dtype == torch.uint8:
        array = array.float() / 255
    else:
        array = array.float()
        low, high = array.min(), array.max()
        array = (array - low) / (high - low) if high > low else torch.zeros_like(array)
    array = array.numpy()
    return array[0] if array.shape[0] == 1 else np.transpose(array[:3], (1, 2, 0))


def tile(maps: np.ndarray, columns: int, gap: int = 1) -> np.ndarray:
    """Lay out ``maps`` (N, H, W) or (N, H, W, 3) in a grid of ``columns``, row by row, with
    ``gap`` pixels of NaN between them (drawn as background): (rows*(H+gap)-gap,
    columns*(W+gap)-gap[, 3])."""
    maps = np.asarray(maps, dtype=np.float64)
    count, height, width = maps.shape[:3]
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    shape = (rows * (height + gap) - gap, columns * (width + gap) - gap) + maps.shape[3:]
    mosaic = np.full(shape, np.nan)
    for index in range(count):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        mosaic[top:top + height, left:left + width] = maps[index]
    return mosaic


def scaled_each(maps: np.ndarray) -> np.ndarray:
    """Each map of (N, ...) stretched to [0, 1] by its own minimum and maximum (a constant map
    becomes 0), so weak and strong channels are both visible."""
    maps = np.asarray(maps, dtype=np.float64)
    flat = maps.reshape(len(maps), -1)
    low = flat.min(axis=1)
    span = flat.max(axis=1) - low
    span[span == 0] = 1
    shape = (-1,) + (1,) * (maps.ndim - 1)
    return (maps - low.reshape(shape)) / span.reshape(shape)


def shape_text(shape) -> str:
    """``6x28x28`` for a shape without its batch axis."""
    return "x".join(str(s) for s in shape)


def default_out(folder, stem: str) -> Path:
    """Where a picture goes when no ``--out`` is given: ``folder/stem.png``, with characters that
    do not belong in a file name replaced."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem)
    return Path(folder) / f"{safe}.png"
