"""The hybrid evaluator: a trained supernet's accuracy and training-free proxies, combined by their ranks.

Weight sharing and zero-cost proxies fail in different ways (an undertrained supernet prefers shallow cells;
proxies follow size and signal propagation at initialisation), so their ranks can be aggregated as AZ-NAS
("AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024) aggregates its proxies: an
arch's score is the sum over components -- the supernet's held-out accuracy with inherited weights, and each
proxy component -- of ``log(rank / m)`` among a reference population (:mod:`nasframe.evaluation.zero_cost.combine`):
the ranked archs in ``nasframe rank``, a seeded sample of ``reference_archs`` archs for a selector.
``evaluator=hybrid evaluator.proxy=...`` takes the supernet evaluator's settings plus the proxies'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


from nasframe.core.arch import Arch
from nasframe.errors import ConfigError
from nasframe.evaluation.evaluator import EvaluatorConfig, SupernetEvaluator
from nasframe.evaluation.zero_cost.combine import COMBINATIONS, RankCombination
from nasframe.evaluation.zero_cost.evaluator import ZeroCostEvaluator

SUPERNET = "supernet"


@dataclass
class HybridConfig(EvaluatorConfig):
    name: str = "hybrid"
    proxy: Any = "synflow"  # the training-free part: one proxy (component) or a list, each with its paper settings
    proxy_seed: int = 0  # the proxies' weights and batches
    combine: str = "log_rank"  # log_rank (AZ-NAS) | rank
    reference_archs: int = 256  # selectors: the seeded sample the components are ranked among

    def check(self) -> None:
        super().check()
        if self.combine not in COMBINATIONS:
            raise ConfigError(f"evaluator.combine: {self.combine!r} is not one of {', '.join(COMBINATIONS)}")
        if self.reference_archs < 1:
            raise ConfigError("evaluator.reference_archs must be >= 1")


class HybridEvaluator(SupernetEvaluator):
    """Scores archs by the rank combination of the supernet's accuracy and proxy components; everything else
    (BN recalibration, :meth:`accuracy_of`, preparing the exported path) is the supernet evaluator's."""

    def __init__(self, *args: Any, proxies: ZeroCostEvaluator, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.space is None:
            raise ConfigError("the hybrid evaluator needs the space (its reference sample)")
        self.proxies = proxies
        self.components = [SUPERNET, *proxies.components]
        self.combination: RankCombination | None = None

    def component_values(self, arch: Mapping[str, str]) -> dict[str, float]:
        return {SUPERNET: self.accuracy_of(arch), **self.proxies.component_values(arch)}

    def __call__(self, arch: Mapping[str, str]) -> float:
        if self.combination is None:
            self.set_reference(self._reference_sample())
        return self.combination(self.component_values(arch))  # type: ignore[misc]

    def set_reference(self, archs: Iterable[Mapping[str, str]]) -> None:
        """Rank the components among ``archs`` (``nasframe rank`` passes the ranked archs)."""
        cfg = self.config
        self.combination = RankCombination([self.component_values(a) for a in archs], self.components, cfg.combine)

    def _reference_sample(self) -> list[Arch]:
        from nasframe.evaluation.ranking import sample_archs

        return sample_archs(self.space, self.config.reference_archs, self.config.proxy_seed)

    def clear_cache(self) -> None:
        """The supernet's weights changed: forget its accuracies and the reference ranks built on them."""
        super().clear_cache()
        self.combination = None

    def describe(self) -> dict[str, Any]:
        return {"evaluator": "hybrid", "components": self.components, "combine": self.config.combine,
                "proxies": self.proxies.describe()}
