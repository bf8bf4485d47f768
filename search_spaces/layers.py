"""Layers that several spaces build with, defined once.

The module structure of each layer is part of checkpoints' state-dict keys (``nn.Sequential`` indices), so a
layer here keeps the layout the spaces had when each defined its own copy: ``ReLUConvBN`` is ``0`` ReLU, ``1``
conv, ``2`` BatchNorm; :func:`conv_bn_stem` is ``0`` conv, ``1`` BatchNorm.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from nasframe.errors import ConfigError

STEM_KERNEL = 3


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BatchNorm: NAS-Bench-201's ``nor_conv`` ops and reduction block, DARTS's cell
    preprocessing. ``padding`` defaults to ``kernel_size // 2`` ("same" for odd kernels at stride 1)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int | None = None,
                 affine: bool = True) -> None:
        padding = kernel_size // 2 if padding is None else padding
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


def conv_bn_stem(c_in: int, c_out: int) -> nn.Sequential:
    """The cell networks' stem: a 3x3 conv (no bias, "same" padding) and an affine BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, STEM_KERNEL, padding=STEM_KERNEL // 2, bias=False), nn.BatchNorm2d(c_out)
    )


def import_pyg_nn(space: str) -> Any:
    """``torch_geometric.nn``, or a :class:`~nasframe.errors.ConfigError` saying that ``space`` needs it (graph
    spaces import it only when they build a network, so encoding and enumeration work without it)."""
    try:
        import torch_geometric.nn as pyg_nn
    except ImportError:
        raise ConfigError(f"the {space} space builds its layers with torch-geometric: pip install torch-geometric") from None
    return pyg_nn
