"""The PathSampler interface.

A path sampler proposes the arch a single-path supernet trains at each step (``sample``). Adaptive samplers
receive the step's statistics back (``observe``). All sampler state, random stream included, is in
``state_dict`` so that a resumed run continues the same sequence of paths.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.registry import SAMPLERS
from nasframe.core.settings import Configurable
from nasframe.core.space import SearchSpace
from nasframe.data.base import DataOrder


class PathSampler(Configurable, ABC):
    """Base class: holds the space and a seeded ``numpy`` generator."""

    name = "sampler"

    def __init__(self, space: SearchSpace, seed: int = 0, **settings: Any) -> None:
        self._init_config(settings, where="sampler")
        self.space = space
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def sample(self) -> Arch:
        """The arch to train at the next step."""

    #: set by samplers that need ``stats["path_grad_norms"]`` in :meth:`observe` (computed only then)
    wants_path_grad_norms = False

    def observe(self, arch: Arch, stats: dict[str, Any]) -> None:
        """Statistics of the step that trained ``arch`` (loss, gradients...). Non-adaptive samplers ignore it."""

    def end_epoch(self, epoch: int, epochs: int) -> None:
        """Called after epoch ``epoch`` (0-based) of ``epochs``; adaptive samplers update here."""

    def data_order(self, num_examples: int) -> DataOrder | None:
        """A training-data sampler to use with this path sampler (PA&DA samples data too); ``None`` for the default."""
        return None

    def log_to(self, writer: Any, epoch: int) -> None:
        """Write the sampler's distributions to TensorBoard."""

    def restructure(self, supernet: nn.Module, epoch: int, epochs: int, probe_batches: Any) -> nn.Module | None:
        """Called at the start of each epoch: a new supernet to train from now on (few-shot splits), or ``None``.
        ``probe_batches(n)`` gives ``n`` training batches for decisions that need data."""
        return None

    def rebuild(self, supernet: nn.Module) -> nn.Module | None:
        """The structure :meth:`restructure` produced, rebuilt from the sampler's state (for resuming and for
        loading a checkpoint); ``None`` if the structure is the space's plain supernet."""
        return None

    def describe_structure(self) -> str:
        return ""

    def state_dict(self) -> dict[str, Any]:
        # JSON keeps the 128-bit PCG64 state exact and loadable with torch.load(weights_only=True)
        return {"rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = json.loads(state["rng"])


def build_sampler(node: Any, space: SearchSpace, seed: int) -> PathSampler:
    """The sampler named by ``node.name``, with the rest of ``node`` as its settings."""
    return SAMPLERS.build(node, "sampler", space=space, seed=seed)
