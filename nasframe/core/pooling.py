"""Average pooling that is fast on the CPU.

``torch.nn.functional.avg_pool2d`` on the CPU is slow for the small feature maps of cell search spaces: on 2
cores (torch 2.14), a 3x3 stride-1 pool of a 64x8x32x32 tensor takes about 10x the time of a depthwise
convolution with the same window in the forward pass, and about 4x forward plus backward
(``scripts/bench_pooling.py``). Cell spaces (NAS-Bench-201, DARTS) put a 3x3 average pool on every edge, so
this dominates their CPU training and scoring.

:class:`AvgPool2d` is a drop-in ``nn.AvgPool2d`` that computes the same function on the CPU as a depthwise
convolution with an all-ones window, divided by the window size (``count_include_pad=True``) or by the number of
in-bounds elements of each window (``count_include_pad=False``). On other devices, for other dtypes, and for
options the convolution does not express (``ceil_mode``, ``divisor_override``), it calls ``avg_pool2d`` itself.
It has no parameters and no buffers, so state dicts and exported subnets are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AvgPool2d(nn.AvgPool2d):
    """``nn.AvgPool2d`` with a depthwise-convolution path on the CPU (same outputs and gradients)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._divisors: dict[tuple, torch.Tensor] = {}  # per (height, width, dtype): elements per window

    def _conv_path_applies(self, x: torch.Tensor) -> bool:
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
        if not self._conv_path_applies(x):
            return super().forward(x)
        k, s, p = _pair(self.kernel_size), _pair(self.stride or self.kernel_size), _pair(self.padding)
        channels = x.shape[1]
        window = x.new_ones(1, 1, *k).expand(channels, 1, *k)
        total = F.conv2d(x, window, stride=s, padding=p, groups=channels)
        return total / self._divisor(x, k, s, p)

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
        state = self.__dict__.copy()
        state["_divisors"] = {}
        return state


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
