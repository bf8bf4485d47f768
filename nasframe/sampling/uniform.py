"""Uniform single-path sampling (SPOS).

"Single Path One-Shot Neural Architecture Search with Uniform Sampling" (Guo et al., ECCV 2020): at every
step one path is drawn with each choice's option uniform and independent, P(arch) = prod_c 1/|options_c|.
"""

from __future__ import annotations

from nasframe.core.arch import Arch
from nasframe.core.registry import SAMPLERS
from nasframe.sampling.base import PathSampler


@SAMPLERS.register("uniform")
class UniformSampler(PathSampler):
    """Each choice's option uniform and independent at every step."""

    name = "uniform"

    def sample(self) -> Arch:
        return self.space.sample(self.rng)
