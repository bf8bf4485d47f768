"""Channel sorting of the elastic MobileNet supernet, Once-for-All's preparation of every width phase.

"Once-for-All: Train One Network and Specialize it for Efficient Deployment" (Cai et al., ICLR 2020), Sec. 3.2
(elastic width): a narrower expand ratio keeps the *first* middle channels of a block, so before each width phase
of progressive shrinking the middle channels are reordered by importance, the L1 norm of each channel's weights
in the block's projection (the 1x1 convolution that reads the middle channels), largest first. The reordering is
a permutation applied consistently to everything that carries the middle channels -- the expand convolution's
output channels and its BatchNorm, the depthwise convolution and its BatchNorm, the squeeze-excite's input and
output channels, the projection's input channels -- so the full-width network computes the same function, and
every narrower width now holds the most important channels. Inside a squeeze-excite, whose hidden width also
shrinks with the block, the hidden units are then reordered the same way by the L1 norm of their weights in the
excite convolution.

Permuting weights invalidates an optimiser's per-parameter state (momentum): sort between phases, where the
optimiser is rebuilt, as Once-for-All does.
"""

from __future__ import annotations

import torch
from torch import nn

from nasframe.core.elastic import ElasticBatchNorm2d, ElasticConv2d, ElasticSqueezeExcite
from search_spaces.mobilenet import InvertedResidual, MobileNetSupernet


def importance_order(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Indices of ``weight`` 's slices along ``dim`` by descending L1 norm (ties keep their order)."""
    other = tuple(d for d in range(weight.dim()) if d != dim)
    norms = weight.detach().abs().sum(dim=other)
    return torch.sort(norms, descending=True, stable=True).indices


def _permute_(parameter: torch.Tensor | None, order: torch.Tensor, dim: int) -> None:
    if parameter is not None:
        parameter.data.copy_(parameter.data.index_select(dim, order.to(parameter.device)))


def _permute_batchnorm_(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        _permute_(tensor, order, 0)


def _sort_squeeze_excite_(se: ElasticSqueezeExcite, order: torch.Tensor) -> None:
    """The block's middle-channel ``order`` on the SE's input and output, then its own hidden units."""
    _permute_(se.reduce.weight, order, 1)
    _permute_(se.expand.weight, order, 0)
    _permute_(se.expand.bias, order, 0)
    hidden = importance_order(se.expand.weight, dim=1)
    _permute_(se.expand.weight, hidden, 1)
    _permute_(se.reduce.weight, hidden, 0)
    _permute_(se.reduce.bias, hidden, 0)


@torch.no_grad()
def sort_block_channels(block: InvertedResidual) -> torch.Tensor:
    """Reorder ``block`` 's middle channels by the L1 norm of their projection weights, in place; returns the
    order (new position ``i`` holds old channel ``order[i]``)."""
    project = block.project.conv
    if block.expand is None or not isinstance(project, ElasticConv2d):
        raise TypeError("sort_block_channels needs an elastic inverted residual block with an expand convolution")
    order = importance_order(project.weight, dim=1)
    _permute_(project.weight, order, 1)
    _permute_(block.expand.conv.weight, order, 0)
    _permute_(block.expand.conv.bias, order, 0)
    _permute_batchnorm_(block.expand.bn, order)
    _permute_(block.depthwise.conv.weight, order, 0)
    _permute_batchnorm_(block.depthwise.bn, order)
    if block.se is not None:
        _sort_squeeze_excite_(block.se, order)
    return order


def sort_channels(supernet: MobileNetSupernet) -> list[torch.Tensor]:
    """Sort the middle channels of every elastic block of ``supernet`` (see the module docstring); returns each
    block's order, stage by stage. The active sizes are left as they were."""
    orders = []
    for stage in supernet.stages:
        for block in stage:
            if isinstance(block.expand.bn, ElasticBatchNorm2d):
                orders.append(sort_block_channels(block))
    return orders


__all__ = ["importance_order", "sort_block_channels", "sort_channels"]
