"""BatchNorm recalibration.

A weight-sharing supernet's BatchNorm running statistics mix every path it trained; a single path's
activations have other statistics. Recalibration (as in "Single Path One-Shot NAS with Uniform Sampling")
resets the running statistics and re-estimates them for the active path from training batches: with
``momentum=None`` BatchNorm keeps the exact cumulative mean over the batches seen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def ensure_eval(model: nn.Module) -> None:
    """Put ``model`` in eval mode, walking it with ``eval()`` only when some module is in training mode: a
    supernet has thousands of modules, and ``eval()`` sets the flag on each through ``nn.Module.__setattr__``,
    which costs more than scoring a small arch."""
    if any(m.training for m in model.modules()):
        model.eval()


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate the running statistics of every BatchNorm from ``batches``; returns the batch count.

    Only BatchNorm layers run in training mode (dropout and the like stay in eval mode); the model is left
    in eval mode. Layers that are not on the active path are reset and stay unused.
    """
    layers = batchnorm_layers(model)
    ensure_eval(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
    count = 0
    try:
        for x in batches:
            model(x)
            count += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
            layer.eval()
    return count


@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Within the block, every BatchNorm normalises with the statistics of the batch it sees (as in training
    mode) and leaves its running statistics untouched; the rest of the model keeps its mode. DARTS-PT
    ("Rethinking Architecture Selection in Differentiable NAS") scores a perturbed supernet this way."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(layer.training, layer.track_running_stats) for layer in layers]
    for layer in layers:
        layer.train()
        layer.track_running_stats = False  # forward then passes no running buffers: nothing is updated
    try:
        yield
    finally:
        for layer, (training, track) in zip(layers, saved):
            layer.train(training)
            layer.track_running_stats = track
