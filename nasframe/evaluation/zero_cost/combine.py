"""Combining several proxies into one score by their ranks.

"AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search" (Lee & Ham, CVPR 2024) ranks a
population of ``m`` archs by each proxy separately (rank 1 = lowest value, ``m`` = highest) and scores an arch
by the sum over proxies of ``log(rank / m)``: a non-linear rank aggregation that punishes an arch ranked low
by any one proxy more than it rewards one ranked high. Ties share their average rank.

A selector meets archs one at a time, so the population it is ranked in is a fixed *reference* sample of the
space: an arch's rank under a proxy is the average rank its value would take among the ``m`` reference values,
``(number of reference values < v) + (number equal to v + 1) / 2``, over ``m``. For a member of the reference this
is exactly its (tie-averaged) rank, so ranking the reference archs themselves is AZ-NAS's aggregation; a value
outside the reference falls half a rank between its neighbours (at least ``0.5 / m``: the logarithm stays
finite).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

COMBINATIONS = ("log_rank", "rank")


class RankCombination:
    """Scores component vectors by their ranks among a reference population's values."""

    def __init__(self, reference: Sequence[Mapping[str, float]], components: Sequence[str], how: str = "log_rank") -> None:
        if how not in COMBINATIONS:
            raise ValueError(f"combination {how!r} is not one of {', '.join(COMBINATIONS)}")
        if not reference:
            raise ValueError("a rank combination needs a non-empty reference population")
        self.components = tuple(components)
        self.how = how
        self.sorted = {c: np.sort(np.asarray([r[c] for r in reference], dtype=float)) for c in self.components}
        self.size = len(reference)

    def rank(self, component: str, value: float) -> float:
        """``value`` 's rank among the reference values of ``component`` over ``m`` (see the module docstring)."""
        values = self.sorted[component]
        below = np.searchsorted(values, value, side="left")
        equal = np.searchsorted(values, value, side="right") - below
        return (below + (equal + 1) / 2) / self.size

    def __call__(self, values: Mapping[str, float]) -> float:
        ranks = [self.rank(c, values[c]) for c in self.components]
        return float(np.sum(np.log(ranks)) if self.how == "log_rank" else np.sum(ranks))


def combine_population(values: Sequence[Mapping[str, float]], components: Sequence[str],
                       how: str = "log_rank") -> list[float]:
    """Each member's combined score with the population itself as the reference (AZ-NAS's protocol)."""
    combination = RankCombination(values, components, how)
    return [combination(v) for v in values]
