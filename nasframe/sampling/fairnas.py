"""FairNAS: strict-fairness sampling.

"FairNAS: Rethinking Evaluation Fairness of Weight Sharing Neural Architecture Search" (Chu, Zhang & Xu, ICCV
2021). Uniform single-path sampling (SPOS) trains every option equally often only in expectation; FairNAS makes it
hold at every step. With ``m`` options per choice, a step draws, for each choice ``c`` independently, a uniform
random permutation ``pi_c`` of its options, and builds ``m`` single paths, path ``k`` taking option ``pi_c(k)`` on
every choice. The ``m`` paths train on the same batch in turn, their gradients accumulated, and then the
supernet takes one optimiser step: after every step each option of each choice has been trained exactly once
(strict fairness), and each sees the same parameters before the update.

Choices with different option counts: a step has ``m = lcm(|options_c|)`` paths and choice ``c`` repeats each of
its options ``m / |options_c|`` times (a random permutation of that multiset), so every option of a choice is
trained equally often in every step. Steps longer than ``max_paths`` paths are refused with a clear error.

Spaces with rules on option combinations (NAS-Bench-Graph: not every op ``skip``; DARTS: two inputs per node):
a step's permutations are redrawn until all ``m`` paths are archs of the space; a space whose rules reject
most draws is refused.
"""

from __future__ import annotations

import math
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

#: redraws of a step's permutations before a space whose rules reject them is refused
MAX_REDRAWS = 1000


@dataclass
class FairNASConfig:
    max_paths: int = 12  # refuse a space whose strictly fair step needs more paths (lcm of the option counts)


@SAMPLERS.register("fairnas")
class FairNASSampler(PathSampler):
    """Every option of every choice trained exactly once per step, over ``m`` paths with accumulated gradients."""

    name = "fairnas"
    Config = FairNASConfig

    def __init__(self, space: SearchSpace, seed: int = 0, **settings: Any) -> None:
        super().__init__(space, seed, **settings)
        counts = [len(c) for c in space.choices]
        self.paths_per_step = math.lcm(*counts) if counts else 1
        if self.paths_per_step > self.config.max_paths:
            raise ConfigError(
                f"sampler (fairnas): a strictly fair step on space '{space.name}' needs {self.paths_per_step} paths "
                f"(the least common multiple of its option counts {sorted(set(counts))}), more than "
                f"sampler.max_paths={self.config.max_paths}; raise it if the cost is acceptable")

    def sample_group(self) -> PathGroup:
        """The ``m`` paths of the next step: each choice's options in a fresh random order (each option
        ``m / |options|`` times), path ``k`` taking the ``k``-th entry of every choice; redrawn until every path is
        an arch of the space."""
        m = self.paths_per_step
        for _ in range(MAX_REDRAWS):
            columns = {c.name: [c.options[i % len(c)] for i in self.rng.permutation(m)] for c in self.space.choices}
            paths = tuple(Arch({name: column[k] for name, column in columns.items()}) for k in range(m))
            if all(self.space.contains(path) for path in paths):
                return PathGroup(paths)
        raise ConfigError(f"sampler (fairnas): {MAX_REDRAWS} fair draws in a row had a path outside space "
                          f"'{self.space.name}'; its rules on option combinations leave no strictly fair step")

    def sample(self) -> Arch:
        """One arch drawn uniformly (for callers that need a single path)."""
        return self.space.sample(self.rng)

    def train_step(self, step: StepContext, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """All ``m`` paths of :meth:`sample_group` on the batch, gradients accumulated before one update."""
        return train_group(step, self.sample_group(), x, y)
