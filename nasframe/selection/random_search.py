"""Random search: evaluate distinct uniform samples that meet the constraints, keep the best.

The baseline of "Random Search and Reproducibility for Neural Architecture Search" (Li & Talwalkar, 2019).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nasframe.core.registry import SELECTORS
from nasframe.core.space import SearchSpace
from nasframe.selection.base import QueryLog, QuerySelector, sample_satisfying
from nasframe.selection.constraints import Constraint


@dataclass
class RandomSearchConfig:
    num_samples: int = 100  # distinct archs to evaluate (at most the size of the space)
    max_tries: int = 1000  # rejection-sampling tries per arch under constraints


@SELECTORS.register("random")
class RandomSearch(QuerySelector):
    name = "random"
    Config = RandomSearchConfig

    def _search(self, space: SearchSpace, log: QueryLog, constraints: Sequence[Constraint],
                rng: np.random.Generator) -> None:
        cfg = self.config
        target = min(cfg.num_samples, space.size)
        misses = 0
        while len(log.history) < target and misses < cfg.max_tries:
            arch = sample_satisfying(space, rng, constraints, cfg.max_tries)
            if arch in log.scores:
                misses += 1
                continue
            log(arch)
