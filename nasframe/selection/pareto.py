"""Pareto dominance for two objectives: higher accuracy and lower latency.

Arch ``a`` dominates arch ``b`` when ``a`` is at least as accurate and at least as fast, and strictly better in
one of the two. The Pareto front is the set of archs no other arch dominates. Ranking a population front by
front, with ties inside a front broken by crowding distance, is the selection of "A Fast and Elitist
Multiobjective Genetic Algorithm: NSGA-II" (Deb et al., 2002), used for NAS by "NSGA-Net: Neural Architecture
Search using Multi-Objective Genetic Algorithm".
"""

from __future__ import annotations

import numpy as np


def dominates(score_a: float, ms_a: float, score_b: float, ms_b: float) -> bool:
    """Whether (``score_a``, ``ms_a``) dominates (``score_b``, ``ms_b``): no worse in both, better in one."""
    return score_a >= score_b and ms_a <= ms_b and (score_a > score_b or ms_a < ms_b)


def non_dominated_fronts(scores: np.ndarray, latencies: np.ndarray) -> list[list[int]]:
    """Indices of the points, front by front: front 0 is the Pareto front, front 1 the Pareto front of the
    rest, and so on (NSGA-II's fast non-dominated sort). Equal points land in the same front."""
    scores, latencies = np.asarray(scores, dtype=float), np.asarray(latencies, dtype=float)
    n = len(scores)
    better_eq = (scores[:, None] >= scores[None, :]) & (latencies[:, None] <= latencies[None, :])
    strictly = (scores[:, None] > scores[None, :]) | (latencies[:, None] < latencies[None, :])
    dominance = better_eq & strictly  # dominance[i, j]: i dominates j
    dominated_by = dominance.sum(axis=0)  # how many points dominate each point
    fronts: list[list[int]] = []
    current = [i for i in range(n) if dominated_by[i] == 0]
    remaining = dominated_by.copy()
    while current:
        fronts.append(sorted(current))
        following = []
        for i in current:
            for j in np.flatnonzero(dominance[i]):
                remaining[j] -= 1
                if remaining[j] == 0:
                    following.append(int(j))
        current = following
    return fronts


def crowding_distance(scores: np.ndarray, latencies: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point of one front: per objective, the gap between its two
    neighbours in sorted order divided by the objective's range, summed; the extreme points get infinity."""
    points = np.stack([np.asarray(scores, dtype=float), np.asarray(latencies, dtype=float)], axis=1)
    n = len(points)
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for column in points.T:
        order = np.argsort(column, kind="stable")
        span = column[order[-1]] - column[order[0]]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distance


def nsga2_best(scores: np.ndarray, latencies: np.ndarray, count: int) -> list[int]:
    """The ``count`` best points by NSGA-II's order: whole fronts first, then the least crowded of the next."""
    chosen: list[int] = []
    for front in non_dominated_fronts(scores, latencies):
        if len(chosen) + len(front) <= count:
            chosen.extend(front)
            continue
        idx = np.array(front)
        crowding = crowding_distance(np.asarray(scores)[idx], np.asarray(latencies)[idx])
        order = np.argsort(-crowding, kind="stable")
        chosen.extend(int(idx[k]) for k in order[: count - len(chosen)])
        break
    return chosen


def pareto_front(scores: np.ndarray, latencies: np.ndarray) -> list[int]:
    """Indices of the Pareto front, sorted by latency (fastest first)."""
    front = non_dominated_fronts(scores, latencies)[0] if len(scores) else []
    return sorted(front, key=lambda i: (latencies[i], -scores[i]))
