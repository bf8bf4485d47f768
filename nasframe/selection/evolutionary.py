"""Evolutionary selection as in SPOS.

"Single Path One-Shot Neural Architecture Search with Uniform Sampling" (Guo et al., ECCV 2020), Sec. 3.3:
a population of archs meeting the constraints is evaluated with inherited weights; each generation the
``parents`` best archs seen so far breed the next population, half by mutation (each choice re-drawn with
probability ``mutation_prob``) and half by uniform crossover of two parents. Children that violate a
constraint or were already evaluated are rejected and drawn again. The best arch ever evaluated is returned.

Latency. A latency budget (``constraints.max_latency_ms`` with a latency table) is a constraint like any other:
no arch predicted slower is sampled, bred or evaluated ("Once-for-All: Train One Network and Specialize it for
Efficient Deployment" searches its supernet this way). With ``objective=pareto`` the search has two objectives,
accuracy up and predicted latency down: the parents of each generation are the best archs seen so far in
NSGA-II's order (non-dominated fronts, then crowding distance; "A Fast and Elitist Multiobjective Genetic
Algorithm: NSGA-II"), and the result records the accuracy/latency Pareto front of every arch evaluated
(``details["pareto_front"]``); the returned arch is still the most accurate one (within the budget, if any).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasframe.core.arch import Arch
from nasframe.core.registry import SELECTORS
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError
from nasframe.selection.base import QueryLog, QuerySelector, sample_satisfying
from nasframe.selection.constraints import Constraint, LatencyBudget, latency_source, satisfies
from nasframe.selection.pareto import nsga2_best, pareto_front

OBJECTIVES = ("accuracy", "pareto")


@dataclass
class EvolutionConfig:
    population_size: int = 20
    generations: int = 10
    parents: int = 10  # top-k archs seen so far that breed each generation
    mutation_prob: float = 0.1  # per-choice probability of re-drawing the option
    mutation_share: float = 0.5  # share of each new population made by mutation (the rest by crossover)
    max_tries: int = 1000  # draws allowed per child before giving up on it
    objective: str = "accuracy"  # accuracy | pareto (accuracy and predicted latency; needs a latency table)


@SELECTORS.register("evolutionary")
class EvolutionarySearch(QuerySelector):
    name = "evolutionary"
    Config = EvolutionConfig

    def __init__(self, **settings) -> None:
        super().__init__(**settings)
        cfg = self.config
        if cfg.population_size < 1 or cfg.generations < 1 or cfg.parents < 1:
            raise ConfigError("selector: population_size, generations and parents must be >= 1")
        if not (0 <= cfg.mutation_prob <= 1 and 0 <= cfg.mutation_share <= 1):
            raise ConfigError("selector: mutation_prob and mutation_share must be in [0, 1]")
        if cfg.objective not in OBJECTIVES:
            raise ConfigError(f"selector.objective: {cfg.objective!r} is not one of {', '.join(OBJECTIVES)}")

    def check_constraints(self, constraints: Sequence[Constraint]) -> None:
        if self.config.objective == "pareto" and latency_source(constraints) is None:
            raise ConfigError("selector.objective=pareto needs predicted latencies: set constraints.latency_table to a "
                              "latency table of this space (build one with `nasframe latency`)")

    def _parents(self, log: QueryLog, latency: LatencyBudget | None) -> list[Arch]:
        """The ``parents`` best archs seen so far: by score, or in NSGA-II order (Pareto mode)."""
        if latency is None:
            return heapq.nlargest(self.config.parents, log.scores, key=log.scores.__getitem__)
        archs = list(log.scores)
        scores = np.array([log.scores[a] for a in archs])
        return [archs[i] for i in nsga2_best(scores, latency.latencies(archs), self.config.parents)]

    def _details(self, space: SearchSpace, log: QueryLog, constraints: Sequence[Constraint]) -> dict[str, Any]:
        latency = latency_source(constraints)
        if self.config.objective != "pareto" or latency is None or not log.scores:
            return {}
        archs = list(log.scores)
        scores, ms = np.array([log.scores[a] for a in archs]), latency.latencies(archs)
        front = [{"arch": space.format(archs[i]), "score": float(scores[i]), "latency_ms": float(ms[i])}
                 for i in pareto_front(scores, ms)]
        return {"pareto_front": front, "latency": latency.describe()}

    def _search(self, space: SearchSpace, log: QueryLog, constraints: Sequence[Constraint],
                rng: np.random.Generator) -> None:
        cfg = self.config
        latency = latency_source(constraints) if cfg.objective == "pareto" else None
        population = self._distinct(
            lambda: sample_satisfying(space, rng, constraints, cfg.max_tries), cfg.population_size, set(), constraints
        )
        for generation in range(cfg.generations):
            for arch in population:
                log(arch, round=generation)
            if generation == cfg.generations - 1:
                break
            parents = self._parents(log, latency)
            n_mutants = round(cfg.population_size * cfg.mutation_share)
            seen = set(log.scores)

            def mutant() -> Arch:
                return space.mutate(parents[int(rng.integers(len(parents)))], rng, cfg.mutation_prob)

            def child() -> Arch:
                first, second = rng.choice(len(parents), size=2, replace=len(parents) < 2)
                return space.crossover(parents[int(first)], parents[int(second)], rng)

            mutants = self._distinct(mutant, n_mutants, seen, constraints)
            children = self._distinct(child, cfg.population_size - n_mutants, seen | set(mutants), constraints)
            population = mutants + children
            if not population:  # the neighbourhood is exhausted: nothing new to evaluate
                break

    def _distinct(
        self, draw: Callable[[], Arch], count: int, seen: set[Arch], constraints: Sequence[Constraint]
    ) -> list[Arch]:
        """Up to ``count`` new archs from ``draw`` that meet the constraints and are not in ``seen``."""
        out: list[Arch] = []
        taken = set(seen)
        tries = 0
        while len(out) < count and tries < self.config.max_tries * max(count, 1):
            tries += 1
            arch = draw()
            if arch in taken or not satisfies(arch, constraints):
                continue
            taken.add(arch)
            out.append(arch)
        return out
