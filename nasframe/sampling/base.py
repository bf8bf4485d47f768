"""The PathSampler interface: a training method's own room.

A path sampler proposes the arch a single-path supernet trains at each step (``sample``) and owns the step
itself (:meth:`PathSampler.train_step`): the default trains the sampled path on the batch; a method overrides it
to do its own work (DARTS's architecture step, the sandwich rule's several paths and distillation, FairNAS's
strictly fair paths) through the trainer's :class:`~nasframe.training.step.StepContext`. Every other capability
the trainer or a selector uses is declared here, with its default: ``needs_arch_batches``, ``to``,
``before_update`` (gradient statistics, PA&DA), ``observe``, ``end_epoch``, ``data_order``, ``restructure`` /
``rebuild`` (few-shot splits), ``trains_one_part``, ``trains_parts_as_jobs``, ``schedule_segment`` and
``describe_schedule`` (phases). All sampler state, random stream included, is in ``state_dict`` so that a resumed
run continues the same sequence of paths.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.registry import SAMPLERS
from nasframe.core.settings import Configurable
from nasframe.core.space import SearchSpace
from nasframe.data.base import DataOrder
from nasframe.sampling.group import PathGroup

if TYPE_CHECKING:  # the training package imports the samplers
    from nasframe.training.step import StepContext, StepResult

__all__ = ["PathGroup", "PathSampler", "ScheduleSegment", "build_sampler"]


@dataclass(frozen=True)
class ScheduleSegment:
    """A stretch of training with its own optimiser and learning-rate schedule (a phase of a phased method):
    epochs ``[start, end)``, peak learning rate ``lr`` (None: ``trainer.lr``), linear warm-up over
    ``warmup_epochs``, then cosine down to ``trainer.min_lr`` at ``end``."""

    start: int
    end: int
    lr: float | None = None
    warmup_epochs: int = 0


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

    #: True for samplers whose step needs batches of the valid split (:meth:`StepContext.next_arch_batch`): the
    #: trainer is then built with an ``arch_loader`` (DARTS's architecture step)
    needs_arch_batches: bool = False

    def train_step(self, step: StepContext, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """Compute this step's gradients on this rank's batch ``(x, y)``; the trainer has cleared them before and
        averages, clips and applies them after. The default trains one path from :meth:`sample` on the labels."""
        arch = self.sample()
        step.supernet.set_path(arch)
        return step.train_path(arch, x, y)

    def before_update(self, supernet: nn.Module) -> None:
        """Called when the step's gradients are final (averaged over ranks, clipped), before the optimiser step:
        samplers that learn from gradients read them here (PA&DA). The default reads nothing."""

    def observe(self, trained: Any, stats: dict[str, Any]) -> None:
        """After the optimiser step: what the step trained (:attr:`StepResult.trained`) and its statistics
        (``stats["loss"]``, the loss averaged over ranks). Non-adaptive samplers ignore it."""

    def to(self, device: torch.device | str) -> PathSampler:
        """Move the sampler's tensors (architecture parameters) to the supernet's device; the trainer calls it."""
        return self

    @property
    def trains_one_part(self) -> bool:
        """True for a job that trains one part of a split supernet (few-shot ``train_only``): its run ends with
        training, and selection waits until the parts are merged."""
        return False

    @property
    def trains_parts_as_jobs(self) -> bool:
        """True when the run trains a one-shot phase, then each part of the split supernet as its own job through
        the Hydra launcher (few-shot ``budget=per_part``, see :mod:`nasframe.fewshot_parts`)."""
        return False

    def schedule_segment(self, epoch: int, epochs: int) -> ScheduleSegment | None:
        """The segment of the training schedule that holds ``epoch`` (of ``epochs``) when the method schedules its
        own phases: the trainer starts a fresh optimiser and schedule at each segment's start. ``None`` (the
        default): one cosine schedule over the whole run."""
        return None

    def describe_schedule(self) -> str:
        """The training schedule the sampler sets (its phases), for reports; empty when the run has one cosine
        schedule at ``trainer.lr``."""
        return ""

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
