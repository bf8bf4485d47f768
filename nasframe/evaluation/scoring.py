"""The fast scoring pass: the active path as a standalone network, BatchNorm folded into its convolutions,
optionally in bf16 and channels-last, run on held-out data already on the device.

After BN recalibration every BatchNorm of the path is an affine map with fixed statistics, so a convolution
followed by its BatchNorm is one convolution with ``w' = w * gamma / sqrt(var + eps)`` and
``b' = beta + (b - mean) * gamma / sqrt(var + eps)`` (``torch.nn.utils.fusion.fuse_conv_bn_eval``): one kernel
instead of two, and no BatchNorm memory pass. Folding is exact in real arithmetic; in fp32 it changes logits
by rounding only (tested). In bf16 the classifier stays fp32 (bf16 logits tie too often); bf16 scoring ranks
archs like fp32 scoring (tested on a trained toy supernet).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every ``Conv2d`` directly followed by a ``BatchNorm2d`` inside an ``nn.Sequential`` of ``model``
    (in eval mode, with running statistics) into the convolution; the BatchNorm becomes ``Identity``.
    Returns the number of folded pairs. ``model`` is changed in place and must be in eval mode."""
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (folding uses the running statistics)")
    folded = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats
                    and bn.running_mean is not None):
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
                folded += 1
    return folded


def scoring_network(subnet: nn.Module, fold_bn: bool, dtype: torch.dtype, channels_last: bool) -> nn.Module:
    """``subnet`` (changed in place: pass a fresh extract) prepared for fast scoring: eval mode, folded, cast
    and laid out as asked."""
    net = subnet.eval()
    if fold_bn:
        fold_batchnorm(net)
    net = net.to(dtype=dtype)
    if dtype != torch.float32:
        keep_classifier_in_fp32(net)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def keep_classifier_in_fp32(net: nn.Module) -> None:
    """Run the last ``Linear`` (the classifier) in fp32 on fp32 inputs: bf16 logits (8 bits of mantissa) tie
    often enough to flip argmax decisions, which would change accuracies for reasons of rounding alone."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return
    classifier = linears[-1].float()
    classifier.register_forward_pre_hook(lambda module, args: tuple(a.float() for a in args))
