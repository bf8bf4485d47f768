"""The PathSampler interface.

A path sampler proposes the arch a single-path supernet trains at each step (``sample``). A multi-path sampler
(``multi_path = True``, e.g. the sandwich rule) proposes several archs per step instead (``sample_group``, a
:class:`PathGroup`): the trainer accumulates the gradients of all of them before one optimiser step. Adaptive
samplers receive the step's statistics back (``observe``). All sampler state, random stream included, is in
``state_dict`` so that a resumed run continues the same sequence of paths.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.registry import SAMPLERS
from nasframe.core.settings import Configurable
from nasframe.core.space import SearchSpace
from nasframe.data.base import DataOrder
from nasframe.errors import ConfigError


@dataclass(frozen=True)
class PathGroup:
    """The archs of one multi-path training step, trained in turn (see :meth:`order`), with their gradients summed
    before one optimiser step.

    With a ``teacher`` (an index into ``paths``), that path is trained first, on the labels, and every other path
    on the soft cross-entropy to the teacher's detached softened predictions ``softmax(z_teacher / temperature)``
    (in-place distillation); without one, every path is trained on the labels.
    """

    paths: tuple[Arch, ...]
    teacher: int | None = None
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not self.paths:
            raise ConfigError("a path group needs at least one path")
        if self.teacher is not None and not 0 <= self.teacher < len(self.paths):
            raise ConfigError(f"path group: teacher index {self.teacher} is not one of its {len(self.paths)} paths")
        if self.temperature <= 0:
            raise ConfigError(f"path group: the distillation temperature must be > 0, got {self.temperature}")

    def order(self) -> list[int]:
        """The indices of the paths in training order: the teacher first (its predictions are the targets)."""
        rest = [k for k in range(len(self.paths)) if k != self.teacher]
        return rest if self.teacher is None else [self.teacher, *rest]


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

    #: True for samplers that train several archs per step: the trainer calls :meth:`sample_group`, not :meth:`sample`
    multi_path = False

    def sample_group(self) -> PathGroup:
        """The archs to train at the next step (multi-path samplers)."""
        return PathGroup((self.sample(),))

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
