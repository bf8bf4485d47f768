"""Per-batch image transforms that run on the tensor's device (no DataLoader workers, no PIL).

Images are kept as uint8 tensors (N, C, H, W); a batch is converted and augmented where it lives:

* :class:`Normalize`: ``(x / 255 - mean) / std`` per channel;
* :class:`RandomCropFlip`: the standard CIFAR augmentation, a random ``H x W`` crop of the image zero-padded by
  ``padding`` pixels on each side (every offset in ``[0, 2 * padding]`` equally likely, independently per image
  and axis) and a horizontal flip with probability 1/2, then :class:`Normalize`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


class Normalize:
    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._on:
            self._on[device] = (self.mean.to(device) * 255.0, self.std.to(device) * 255.0)
        return self._on[device]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.is_floating_point():  # already prepared
            return x
        mean, std = self._constants(x.device)
        return (x.float() - mean) / std


class RandomCropFlip:
    def __init__(self, normalize: Normalize, padding: int = 4, flip: bool = True) -> None:
        self.normalize = normalize
        self.padding = padding
        self.flip = flip

    def offsets(self, batch: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Crop offsets (rows, cols) in ``[0, 2 * padding]`` and flip flags, drawn from ``generator``."""
        span = 2 * self.padding + 1
        draws = torch.randint(0, span, (2, batch), generator=generator)
        flips = torch.rand(batch, generator=generator) < 0.5 if self.flip else torch.zeros(batch, dtype=torch.bool)
        return draws[0], draws[1], flips

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.padding
        dy, dx, flips = (t.to(x.device, non_blocking=True) for t in self.offsets(n, generator))
        padded = F.pad(x, (p, p, p, p)) if p else x
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (N, 1, H, 1)
        cols = torch.arange(w, device=x.device).expand(n, w)
        cols = torch.where(flips[:, None], cols.flip(1), cols) + dx[:, None]  # flipped crops read right to left
        cols = cols[:, None, None, :]  # (N, 1, 1, W)
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(c, device=x.device)[None, :, None, None]
        return self.normalize(padded[batch, channel, rows, cols])
