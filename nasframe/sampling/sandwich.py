"""The sandwich rule, with optional in-place distillation.

From "Universally Slimmable Networks and Improved Training Techniques" (Yu & Huang, ICCV 2019) and "BigNAS:
Scaling Up Neural Architecture Search with Big Single-Stage Models" (Yu et al., ECCV 2020): every training step
trains the largest arch, the smallest arch and ``num_random`` archs drawn uniformly (the space's ``sample``),
on the same batch, with their gradients summed (one ``backward`` per arch) before a single optimiser step. The
largest and the smallest arch bound the performance of all the others, so training both every step improves
them all.

In-place distillation (``inplace_distillation``): the largest arch is trained on the labels, and every other arch
of the step on the soft cross-entropy ``-sum_c p_c log softmax(z / T)_c`` to the largest arch's detached soft
predictions ``p = softmax(z_largest / T)`` of the same batch, times ``T^2`` (the gradient scale of "Distilling
the Knowledge in a Neural Network", Hinton et al.; ``T = 1`` by default, as US-Nets and BigNAS). Its gradient
equals that of ``KL(p || softmax(z / T))``, which differs from it by the teacher's entropy, a constant.

The space must know its largest and smallest arch (:meth:`~nasframe.core.space.SearchSpace.largest`; spaces
whose options are ordered by size, e.g. the elastic MobileNet space); another space is refused with a
:class:`~nasframe.errors.ConfigError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from nasframe.core.arch import Arch
from nasframe.core.registry import SAMPLERS
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError
from nasframe.sampling.base import PathSampler
from nasframe.sampling.group import PathGroup, soft_cross_entropy, soft_targets, train_group

if TYPE_CHECKING:
    from nasframe.training.step import StepContext, StepResult

__all__ = ["SandwichSampler", "SandwichConfig", "soft_cross_entropy", "soft_targets", "LARGEST", "SMALLEST"]

#: positions in the group that :meth:`SandwichSampler.sample_group` returns
LARGEST, SMALLEST = 0, 1


@dataclass
class SandwichConfig:
    num_random: int = 2  # archs drawn uniformly per step, besides the largest and the smallest
    inplace_distillation: bool = False  # train all but the largest on the largest arch's soft predictions
    temperature: float = 1.0  # softmax temperature of the distillation targets


@SAMPLERS.register("sandwich")
class SandwichSampler(PathSampler):
    """Largest, smallest and ``num_random`` uniform archs every step (the sandwich rule)."""

    name = "sandwich"
    Config = SandwichConfig

    def __init__(self, space: SearchSpace, seed: int = 0, **settings: Any) -> None:
        super().__init__(space, seed, **settings)
        cfg = self.config
        if cfg.num_random < 0:
            raise ConfigError(f"sampler.num_random must be >= 0, got {cfg.num_random}")
        if cfg.temperature <= 0:
            raise ConfigError(f"sampler.temperature must be > 0, got {cfg.temperature}")
        try:
            self.largest, self.smallest = space.largest(), space.smallest()
        except ConfigError as exc:
            raise ConfigError(f"sampler (sandwich) cannot train space '{space.name}': {exc}") from None

    def sample_group(self) -> PathGroup:
        """``(largest, smallest, random_1, ..., random_k)``; the largest is the teacher under distillation."""
        randoms = tuple(self.space.sample(self.rng) for _ in range(self.config.num_random))
        return PathGroup(
            (self.largest, self.smallest, *randoms),
            teacher=LARGEST if self.config.inplace_distillation else None,
            temperature=self.config.temperature,
        )

    def train_step(self, step: StepContext, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """Every path of :meth:`sample_group` on the batch, gradients summed (:func:`train_group`)."""
        return train_group(step, self.sample_group(), x, y)

    def sample(self) -> Arch:
        """One arch drawn uniformly, as the random members of a group (for callers that need a single path)."""
        return self.space.sample(self.rng)
