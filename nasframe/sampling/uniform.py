"""Uniform single-path sampling (SPOS).

"Single Path One-Shot Neural Architecture Search with Uniform Sampling" (Guo et al., ECCV 2020): at every
step one path is drawn with each choice's option uniform and independent, P(arch) = prod_c 1/|options_c|.

With ``paths_per_step = n > 1``, n archs are drawn so, independently, and trained on the same batch with their
gradients summed before one optimiser step (Once-for-All's ``dynamic_batch_size``: 2 subnets a step in its depth
phases, 4 in its expand phases).
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
from nasframe.sampling.group import PathGroup, train_group

if TYPE_CHECKING:
    from nasframe.training.step import StepContext, StepResult


@dataclass
class UniformConfig:
    paths_per_step: int = 1  # > 1: that many uniform archs trained on each batch, gradients summed (OFA)


@SAMPLERS.register("uniform")
class UniformSampler(PathSampler):
    """Each choice's option uniform and independent at every step."""

    name = "uniform"
    Config = UniformConfig

    def __init__(self, space: SearchSpace, seed: int = 0, **settings: Any) -> None:
        super().__init__(space, seed, **settings)
        if self.config.paths_per_step < 1:
            raise ConfigError(f"sampler.paths_per_step must be >= 1, got {self.config.paths_per_step}")

    def sample(self) -> Arch:
        return self.space.sample(self.rng)

    def train_step(self, step: StepContext, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        if self.config.paths_per_step == 1:
            return super().train_step(step, x, y)
        group = PathGroup(tuple(self.sample() for _ in range(self.config.paths_per_step)))
        return train_group(step, group, x, y)
