"""Preparing an untrained network and its input the way a proxy's paper does: initialisation, BatchNorm
mode, and the batch (real training examples or Gaussian noise), all from one seed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from nasframe.data.base import TensorSplit, Transform
from nasframe.errors import ConfigError
from nasframe.evaluation.bn import batchnorm_layers, recalibrate_batchnorm
from nasframe.evaluation.zero_cost.base import BN_MODES, INITS, INPUTS, ProxyBatch, ProxySettings


def check_settings(settings: ProxySettings, where: str = "evaluator") -> ProxySettings:
    if settings.init not in INITS:
        raise ConfigError(f"{where}.init: {settings.init!r} is not one of {', '.join(INITS)}")
    if settings.bn not in BN_MODES:
        raise ConfigError(f"{where}.bn: {settings.bn!r} is not one of {', '.join(BN_MODES)}")
    if settings.input not in INPUTS:
        raise ConfigError(f"{where}.input: {settings.input!r} is not one of {', '.join(INPUTS)}")
    if settings.batch_size < 1 or settings.batches < 1:
        raise ConfigError(f"{where}: batch_size and batches must be >= 1")
    return settings


@torch.no_grad()
def initialise(net: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise ``net`` in place (the global torch RNG draws the weights: seed it first).

    ``default``: every module's own ``reset_parameters``; ``kaiming_fan_in`` / ``kaiming_fan_out``: He normal
    ("Delving Deep into Rectifiers") for convolutions and linear layers with zero biases, BatchNorm weight 1 and
    bias 0, as AZ-NAS's and ZiCo's code initialise."""
    if scheme not in INITS:
        raise ConfigError(f"init {scheme!r} is not one of {', '.join(INITS)}")
    for module in net.modules():
        if scheme == "default":
            reset = getattr(module, "reset_parameters", None)
            if callable(reset) and any(True for _ in module.parameters(recurse=False)):
                reset()
            continue
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode=scheme.removeprefix("kaiming_"), nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
            if getattr(module, "weight", None) is not None:
                nn.init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif any(True for _ in module.parameters(recurse=False)):  # e.g. PyG layers' own parameters
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return net


def set_batchnorm_mode(net: nn.Module, mode: str, batch: torch.Tensor | None) -> nn.Module:
    """Put ``net`` in the BatchNorm ``mode`` (see :data:`~.base.BN_MODES`); ``calibrated`` runs ``batch``
    once through the network (no gradients) to set the running statistics exactly to its statistics."""
    if mode not in BN_MODES:
        raise ConfigError(f"bn {mode!r} is not one of {', '.join(BN_MODES)}")
    layers = batchnorm_layers(net)
    if mode == "train":
        net.train()
        for layer in [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]:
            # batch statistics only: a proxy's forward passes must not leave running statistics behind
            layer.track_running_stats = False
            layer.running_mean = layer.running_var = layer.num_batches_tracked = None
        return net
    if mode == "calibrated":
        if batch is None:
            raise ConfigError("bn=calibrated needs an input batch (input=real or noise)")
        recalibrate_batchnorm(net, [batch])  # exact statistics of the batch; leaves eval mode
        return net
    net.eval()
    for layer in layers:
        layer.reset_running_stats()
    return net


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Within the block, torch's global RNG (CPU and CUDA) starts from ``seed``; it is restored afterwards, so
    scoring archs does not change the RNG stream of whatever runs next."""
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []):
        torch.manual_seed(seed)
        yield


def make_batch(settings: ProxySettings, train: TensorSplit | None, prepare: Transform | None, num_classes: int,
               input_shape: tuple[int, ...] | None, seed: int, device: torch.device,
               where: str = "evaluator") -> ProxyBatch:
    """The proxy's input: ``settings.batches`` batches of ``settings.batch_size`` training examples drawn without
    replacement with ``seed`` and made model inputs by ``prepare`` (``real``), or standard Gaussian images with
    uniformly random labels (``noise``), or nothing (``none``). A graph network's input (``input_shape`` None) is
    the node ids of the training split, full batch as GNNs are trained; ``noise`` is refused for it (the graph's
    features are the data). ``where``: the config key of the settings, which errors name."""
    generator = torch.Generator().manual_seed(seed)
    inputs: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    if settings.input == "real":
        if train is None:
            raise ConfigError(f"{where}.input=real needs training data")
        if input_shape is None:
            ids, y = train.x.to(device), train.y.to(device)
            return ProxyBatch([ids] * settings.batches, [y] * settings.batches, num_classes, input_shape)
        need = settings.batch_size * settings.batches
        order = torch.randperm(len(train), generator=generator)
        if len(order) < need:  # a small data set: examples repeat across batches
            order = order.repeat((need + len(order) - 1) // len(order))
        for b in range(settings.batches):
            idx = order[b * settings.batch_size:(b + 1) * settings.batch_size]
            x = train.x[idx].to(device)
            inputs.append(prepare(x, None) if prepare else x)
            labels.append(train.y[idx].to(device))
    elif settings.input == "noise":
        if input_shape is None:
            raise ConfigError(f"{where}.input=noise is for image networks; a graph network's input is its graph")
        for _ in range(settings.batches):
            inputs.append(torch.randn(settings.batch_size, *input_shape, generator=generator).to(device))
            labels.append(torch.randint(0, num_classes, (settings.batch_size,), generator=generator).to(device))
    return ProxyBatch(inputs, labels, num_classes, input_shape)
