"""Cutout ("Improved Regularization of Convolutional Neural Networks with Cutout", DeVries & Taylor, 2017), as
the DARTS evaluation applies it: after the usual augmentation and normalisation, one ``length x length`` square
per image, centred at a uniformly drawn pixel and clipped at the borders, is set to zero."""

from __future__ import annotations

import torch

from nasframe.data.base import Transform


class Cutout:
    """Wraps a batch transform (``transform(x, generator)``) and cuts a square out of each of its outputs."""

    def __init__(self, transform: Transform | None, length: int) -> None:
        self.transform = transform
        self.length = length

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.transform is not None:
            x = self.transform(x, generator)
        x = x.float() if not x.is_floating_point() else x
        n, _, h, w = x.shape
        cy = torch.randint(0, h, (n,), generator=generator).to(x.device)
        cx = torch.randint(0, w, (n,), generator=generator).to(x.device)
        half = self.length // 2
        rows = torch.arange(h, device=x.device)[None, :]
        cols = torch.arange(w, device=x.device)[None, :]
        in_rows = (rows >= (cy[:, None] - half)) & (rows < (cy[:, None] + self.length - half))  # (N, H)
        in_cols = (cols >= (cx[:, None] - half)) & (cols < (cx[:, None] + self.length - half))  # (N, W)
        hole = in_rows[:, :, None] & in_cols[:, None, :]  # (N, H, W)
        return x * (~hole)[:, None].to(x.dtype)
