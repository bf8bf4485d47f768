"""Training-free ("zero-cost") proxies: a score of an untrained network that predicts its trained accuracy.

A proxy looks at a freshly initialised network and at most a batch or two of inputs, and returns one or more
numbers (its *components*), each oriented so that higher predicts higher accuracy. How the network is
prepared is part of a proxy's definition and differs between papers, so every proxy declares its paper's
settings (:class:`ProxySettings`): the weight initialisation, the BatchNorm mode, the input (a real training
batch, Gaussian noise, or none at all) and the batch size. The evaluator (:mod:`.evaluator`) applies them,
lets a config override them, and records the settings it used beside every score.

A proxy is one module with one class registered in :data:`PROXIES` (``@PROXIES.register("snip")``), as
PyTorch Geometric keeps one layer per file.
"""

from __future__ import annotations

import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from nasframe.core.registry import Registry

#: BatchNorm modes a proxy can be computed in:
#: ``train``: every BatchNorm normalises with the batch's statistics (no running statistics are updated);
#: ``eval``: running statistics at their initial values (mean 0, variance 1: BatchNorm is its affine map);
#: ``calibrated``: running statistics set to the exact statistics of the proxy's batch, then eval mode.
BN_MODES = ("train", "eval", "calibrated")
#: weight initialisations: ``default`` (each PyTorch module's own reset), ``kaiming_fan_in`` / ``kaiming_fan_out``
#: (He normal for convolutions and linear layers, zero biases, BatchNorm weight 1 and bias 0)
INITS = ("default", "kaiming_fan_in", "kaiming_fan_out")
#: inputs: ``real`` training examples with their labels, ``noise`` (standard Gaussian images, random labels),
#: ``none`` (the proxy makes its own input or needs none)
INPUTS = ("real", "noise", "none")


@dataclass(frozen=True)
class ProxySettings:
    """How the network and its input are prepared for a proxy (each proxy's paper gives its defaults)."""

    init: str = "default"
    bn: str = "train"
    input: str = "real"
    batch_size: int = 64
    batches: int = 1  # how many batches of ``batch_size`` the proxy sees (ZiCo needs two)


@dataclass
class ProxyBatch:
    """What a proxy may look at besides the network.

    ``inputs`` is a list of model inputs (image batches, or node ids of the graph bound to a graph network),
    ``labels`` the matching class labels; ``num_classes`` and ``input_shape`` (one example's shape; ``None`` for
    graph networks) describe the task."""

    inputs: list[torch.Tensor]
    labels: list[torch.Tensor]
    num_classes: int
    input_shape: tuple[int, ...] | None

    @property
    def is_graph(self) -> bool:
        return self.input_shape is None


class Proxy(ABC):
    """A training-free score of a network.

    Subclasses set ``name``, ``components`` (the names of the numbers :meth:`compute` returns; one, equal to
    ``name``, for most proxies), ``paper`` (the title that defines it), ``settings`` (the paper's
    :class:`ProxySettings`), ``supports_graphs`` and ``supports_images`` (which networks the definition applies
    to)."""

    name: ClassVar[str] = "proxy"
    components: ClassVar[tuple[str, ...]] = ()
    paper: ClassVar[str] = ""
    settings: ClassVar[ProxySettings] = ProxySettings()
    supports_graphs: ClassVar[bool] = True
    #: False for proxies defined for graph networks only (NAC)
    supports_images: ClassVar[bool] = True
    #: True when the proxy needs no network weights or data (it reads the architecture's structure only, e.g. on
    #: the meta device): the evaluator then skips initialisation and input preparation
    structural: ClassVar[bool] = False

    @abstractmethod
    def compute(self, net: nn.Module, batch: ProxyBatch) -> dict[str, float]:
        """The proxy's components for ``net`` (prepared by the evaluator: initialised, in the BatchNorm mode of
        the settings, gradients zeroed); higher predicts higher accuracy. ``net`` may be changed."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "components": list(self.components or (self.name,)), "paper": self.paper}


#: modules of this package that hold no proxy; every other module defines (and registers) one
_NOT_PROXIES = {"__init__", "base", "evaluator", "combine", "prepare", "workers"}

PROXIES: Registry[Any] = Registry(
    "zero-cost proxy", "nasframe.proxies",
    tuple(f"{__package__}.{info.name}" for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]),
                                                           key=lambda info: info.name)
          if info.name not in _NOT_PROXIES),
)


def weight_layers(net: nn.Module) -> list[nn.Module]:
    """The layers whose weights the gradient proxies score, in module order: every module that owns a trainable
    ``weight`` of two or more dimensions -- convolutions and linear layers (as the pruning-at-initialisation
    literature that defined SNIP, GraSP and synflow scores them), including PyTorch Geometric's own ``Linear``
    inside its message-passing layers; not normalisation layers (1-D weights) and not biases."""
    layers = []
    for module in net.modules():
        weight = module._parameters.get("weight")
        if weight is not None and weight.requires_grad and weight.dim() >= 2:
            layers.append(module)
    return layers


def cross_entropy_backward(net: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                           zero_grad: bool = True) -> torch.Tensor:
    """One forward and backward pass of the cross-entropy loss; returns the (detached) loss. ``zero_grad=False``
    adds the gradients to those already in the parameters' ``.grad``."""
    if zero_grad:
        net.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(net(inputs), labels)
    loss.backward()
    return loss.detach()
