"""A seeded synthetic image set whose classes a tiny model learns in seconds: for tests and demos.

Class k is an oriented grating (angle k/K of a half turn, 2 to 4 cycles across the image) on a
background whose brightness rises with k; each image is its class's template plus Gaussian pixel
noise and a small random phase shift. The templates depend on the seed alone, so the train and
test splits share them while their samples differ.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import CnnzooError
from ..geometry import parse_size

NOISE_STD = 0.1  # per pixel, in [0, 1] units
AMPLITUDE = 0.2  # of the grating around the class's background brightness
PHASE_JITTER = 0.5  # radians, uniform in +-this
DEFAULT_NUM_SAMPLES = {"train": 1000, "test": 200}
CHUNK = 4096  # images made at a time


def make_synthetic(split: str, *, num_samples: int | None = None,
                   image_size: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...], str]:
    """Images (N, C, H, W) uint8, balanced labels (N,) int64, class names and a description.

    ``num_samples`` defaults to 1,000 for train and 200 for test; the same arguments always give
    the same tensors.
    """
    channels, height, width = parse_size(image_size, name="image_size")
    if not (isinstance(num_classes, int) and num_classes >= 2):
        raise CnnzooError(f"synthetic: num_classes must be an int >= 2, not {num_classes!r}")
    count = DEFAULT_NUM_SAMPLES[split] if num_samples is None else num_samples
    if not (isinstance(count, int) and count >= 1):
        raise CnnzooError(f"synthetic: num_samples must be a positive int, not {count!r}")
    if not (isinstance(seed, int) and 0 <= seed < 2 ** 64):
        raise CnnzooError(f"synthetic: seed must be an int in 0 .. 2**64 - 1, not {seed!r}")

    # the result first: a set too large to hold is refused before any work
    images = torch.empty((count, channels, height, width), dtype=torch.uint8)
    template_rng = torch.Generator().manual_seed(seed)
    sample_rng = torch.Generator().manual_seed(_mix(seed, split))
    k = torch.arange(num_classes, dtype=torch.float32)
    angle = math.pi * k / num_classes
    cycles = 2 + k % 3
    phase = 2 * math.pi * torch.rand(num_classes, generator=template_rng, dtype=torch.float32)
    brightness = 0.25 + 0.5 * k / (num_classes - 1)

    labels = torch.arange(count) % num_classes
    labels = labels[torch.randperm(count, generator=sample_rng)]
    jitter = PHASE_JITTER * (2 * torch.rand(count, generator=sample_rng, dtype=torch.float32) - 1)
    v = torch.arange(height, dtype=torch.float32)[:, None] / height
    u = torch.arange(width, dtype=torch.float32)[None, :] / width
    channel_shift = torch.arange(channels, dtype=torch.float32) * math.pi / 3
    # made in chunks, the float images of a chunk take a bounded amount of memory beside the
    # result (the noise drawn chunk after chunk is the same stream as drawn at once: CHUNK
    # images hold a multiple of the 16 numbers torch draws at a time)
    for start in range(0, count, CHUNK):
        part = slice(start, start + CHUNK)
        chosen = labels[part]
        # (n, C, H, W) from per-sample (n,), per-channel (C,) and per-pixel (H, W) terms.
        position = (u * torch.cos(angle[chosen])[:, None, None]
                    + v * torch.sin(angle[chosen])[:, None, None])
        argument = (2 * math.pi * cycles[chosen][:, None, None, None] * position[:, None]
                    + (phase[chosen] + jitter[part])[:, None, None, None]
                    + channel_shift[:, None, None])
        chunk = brightness[chosen][:, None, None, None] + AMPLITUDE * torch.cos(argument)
        chunk += NOISE_STD * torch.randn(chunk.shape, generator=sample_rng, dtype=torch.float32)
        images[part] = (chunk.clamp(0, 1) * 255).round().to(torch.uint8)
    classes = tuple(f"class{i}" for i in range(num_classes))
    source = (f"synthetic: {num_classes} classes of oriented gratings, {count} {split} samples "
              f"of {channels}x{height}x{width}, seed {seed}")
    return images, labels, classes, source


def _mix(seed: int, split: str) -> int:
    state = np.random.SeedSequence([seed, 1 if split == "train" else 2]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])
