"""Average pooling that is fast on the CPU.

``torch.nn.functional.avg_pool2d`` on the CPU is slow for the small feature maps of cell search spaces: on 2
cores (torch 2.14), a 3x3 stride-1 pool of a 64x16x32x32 tensor takes about 5x the time of summing shifted views
(``scripts/bench_pooling.py``). Cell spaces (NAS-Bench-201, DARTS) put a 3x3 average pool on every edge, so this
dominates their CPU training and scoring.

:class:`AvgPool2d` is a drop-in ``nn.AvgPool2d`` that computes the same function on the CPU as a sum of ``k``
shifted (strided) views of the zero-padded input along the height, then ``k`` along the width, divided by the
window size (``count_include_pad=True``) or by the number of in-bounds elements of each window
(``count_include_pad=False``). Every output element is summed in a fixed order from its own window only, so the
result does not depend on the batch size: a batch split across data-parallel ranks computes exactly what the whole
batch computes (a convolution-based pool does not guarantee that). On other devices, for other dtypes, and for
options this does not express (``ceil_mode``, ``divisor_override``), it calls ``avg_pool2d`` itself. It has no
parameters and no buffers, so state dicts and exported subnets are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def window_sums(x: torch.Tensor, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int]) -> torch.Tensor:
    """Sum of each ``k`` window of the zero-padded ``x`` at stride ``s``: shifted strided views added along the
    height, then along the width."""
    height, width = x.shape[-2] + 2 * p[0], x.shape[-1] + 2 * p[1]
    out_h, out_w = (height - k[0]) // s[0] + 1, (width - k[1]) // s[1] + 1
    padded = F.pad(x, (p[1], p[1], p[0], p[0])) if p[0] or p[1] else x
    rows = padded[..., 0 : s[0] * (out_h - 1) + 1 : s[0], :]
    for i in range(1, k[0]):
        rows = rows + padded[..., i : i + s[0] * (out_h - 1) + 1 : s[0], :]
    total = rows[..., 0 : s[1] * (out_w - 1) + 1 : s[1]]
    for j in range(1, k[1]):
        total = total + rows[..., j : j + s[1] * (out_w - 1) + 1 : s[1]]
    return total


class AvgPool2d(nn.AvgPool2d):
    """``nn.AvgPool2d`` with a shifted-sum path on the CPU (same outputs and gradients)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._divisors: dict[tuple, torch.Tensor] = {}  # per (height, width, dtype): elements per window

    def _fast_path_applies(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and x.dim() == 4
            and not self.ceil_mode
            and self.divisor_override is None
            and not torch.jit.is_scripting()
            and not torch.compiler.is_compiling()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._fast_path_applies(x):
            return super().forward(x)
        k, s, p = _pair(self.kernel_size), _pair(self.stride or self.kernel_size), _pair(self.padding)
        return window_sums(x, k, s, p) / self._divisor(x, k, s, p)

    def _divisor(self, x: torch.Tensor, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int]) -> torch.Tensor:
        key = (x.shape[-2], x.shape[-1], x.dtype)
        divisor = self._divisors.get(key)
        if divisor is None:
            if self.count_include_pad:
                divisor = torch.tensor(float(k[0] * k[1]), dtype=x.dtype)
            else:
                ones = torch.ones(1, 1, x.shape[-2], x.shape[-1], dtype=x.dtype)
                divisor = F.conv2d(ones, torch.ones(1, 1, *k, dtype=x.dtype), stride=s, padding=p)
            self._divisors[key] = divisor
        return divisor

    def __getstate__(self) -> dict:  # the divisor cache is rebuilt on demand, never pickled or deep-copied
        state = super().__getstate__()  # nn.Module's: without a compiled call (it would call this module)
        state["_divisors"] = {}
        return state


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
