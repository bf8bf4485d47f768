"""Predictor-guided search: evaluate the archs a surrogate ranks highest, refit it on what was evaluated, repeat.

The search loop of predictor-based NAS as "How Powerful are Performance Predictors in Neural Architecture
Search?" (White et al., NeurIPS 2021) frames it after BANANAS and NPENAS ("NPENAS: Neural Predictor Guided
Evolution for Neural Architecture Search", Wei et al.), with the predictor's features taken from zero-cost proxies
as "NAS-Bench-Suite-Zero: Accelerating Research on Zero Cost Proxies" (Krishnakumar et al., NeurIPS 2022) adds
them to BANANAS and NPENAS:

1. evaluate ``initial`` distinct uniform archs that meet the constraints;
2. each round, fit :class:`~nasframe.evaluation.surrogate.ProxySurrogate` on every arch evaluated so far (its
   features: the zero-cost proxies of its untrained network as ranks, the one-hot encoding, the cell-structure
   features where the space has them: NB201 cells, NAS-Bench-Graph), score a pool of candidates that meet the
   constraints and were not evaluated --
   ``candidates`` of them, half mutations of the ``parents`` best evaluated archs and half uniform samples
   (NPENAS's pool), or with ``candidates=0`` every model of the space -- and evaluate the ``per_round`` highest
   predicted;
3. stop after ``num_queries`` evaluations (or the caller's ``max_queries``, if fewer).

A round in which every evaluated arch has the same score (an untrained supernet at chance level) has nothing to
fit: it evaluates the pool's first candidates unguided, and its record says so (``guided: false``).

The result is the best arch *evaluated*, by the evaluator's score, as for every query selector: the surrogate only
chooses what to evaluate. Archs are evaluated as their isomorphism class's representative
(:meth:`~nasframe.core.space.SearchSpace.canonical`), and a class is evaluated at most once.

The proxies (``proxy``, with ``batch_size``, ``per_proxy`` and ``proxy_seed`` as ``evaluator=zero_cost`` takes
them) are computed by the run, which passes them in :attr:`~nasframe.selection.base.SelectorInputs.proxies`;
``proxy: []`` fits on the encoding (and cell features) alone. The defaults are the training-free preset
``evaluator=zero_cost_assembly``'s members and settings; ``per_proxy`` settings of a proxy left out of ``proxy``
are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from nasframe.core.arch import Arch
from nasframe.core.registry import SELECTORS
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError
from nasframe.evaluation.surrogate import MODELS, ProxySurrogate, has_structure
from nasframe.selection.base import (Evaluate, QueryBudgetExhausted, QueryLog, SelectionResult, Selector,
                                     SelectorInputs, sample_satisfying)
from nasframe.selection.constraints import Constraint, satisfies

#: the most archs ``candidates=0`` enumerates (and scores with the proxies)
MAX_ENUMERATED = 100_000


def _assembly_proxies() -> List[str]:
    return ["az_expressivity", "az_progressivity", "az_trainability", "params", "synflow", "jacov"]


def _assembly_per_proxy() -> Dict[str, Any]:
    return {"synflow": {"bn": "calibrated", "input": "real"}}


@dataclass
class PredictorGuidedConfig:
    num_queries: int = 100  # archs evaluated in all (the caller's max_queries caps it)
    initial: int = 10  # uniform archs evaluated before the first fit (>= 2)
    per_round: int = 10  # archs evaluated per round: the pool's highest predicted
    candidates: int = 200  # pool scored per round: half mutations of the best, half uniform; 0: the whole space
    parents: int = 10  # the best evaluated archs that the pool's mutations start from
    mutation_prob: float = 0.2  # per-choice probability of re-drawing the option in a mutation
    model: str = "gbt+pairwise"  # the surrogate (nasframe/evaluation/surrogate.py)
    encode_arch: bool = True  # add the one-hot encoding of the arch to the features
    cell_features: Optional[bool] = None  # cell-structure features (null: where the space has them)
    proxy: List[str] = field(default_factory=_assembly_proxies)  # zero-cost proxies as features ([]: none)
    batch_size: Optional[int] = 16  # the proxies' batch (null: each proxy's paper default)
    per_proxy: Dict[str, Any] = field(default_factory=_assembly_per_proxy)  # one proxy's settings
    proxy_seed: int = 0  # the proxies' weights and batches
    cache_file: Optional[str] = None  # JSON lines of computed proxy values, reused when the settings match
    max_tries: int = 1000  # draws allowed per candidate before giving up on it


@SELECTORS.register("predictor_guided")
class PredictorGuidedSearch(Selector):
    """See the module docstring."""

    name = "predictor_guided"
    Config = PredictorGuidedConfig

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        cfg = self.config
        if cfg.num_queries < 2 or cfg.initial < 2 or cfg.per_round < 1 or cfg.parents < 1 or cfg.candidates < 0:
            raise ConfigError("selector: need num_queries >= 2, initial >= 2, per_round >= 1, parents >= 1 and "
                              "candidates >= 0")
        if not 0 < cfg.mutation_prob <= 1:
            raise ConfigError("selector.mutation_prob must be in (0, 1]")
        if cfg.model not in MODELS:
            raise ConfigError(f"selector.model: {cfg.model!r} is not one of {', '.join(MODELS)}")
        if cfg.candidates and cfg.candidates < cfg.per_round:
            raise ConfigError(f"selector.candidates ({cfg.candidates}) must be at least per_round ({cfg.per_round}), "
                              "or 0 for the whole space")

    def proxy_config(self):
        """The zero-cost settings of the features, which the run computes (``None`` without proxies)."""
        from nasframe.evaluation.zero_cost.base import PROXIES
        from nasframe.evaluation.zero_cost.evaluator import ZeroCostConfig, component_owners

        cfg = self.config
        if not cfg.proxy:
            return None
        owners = component_owners()  # an unknown name is left for the evaluator to refuse, by the selector's key
        running = {name if name in PROXIES else owners.get(name) for name in cfg.proxy}
        # settings of a registered proxy that is not among the features are dropped (the default's synflow
        # settings when synflow is left out); an unknown name is kept, for the evaluator to refuse by name
        per_proxy = {k: v for k, v in dict(cfg.per_proxy or {}).items() if k in running or k not in PROXIES}
        return ZeroCostConfig(proxy=list(cfg.proxy), seed=cfg.proxy_seed, batch_size=cfg.batch_size,
                              per_proxy=per_proxy, cache_file=cfg.cache_file)

    def select(self, space: SearchSpace, evaluate: Evaluate, *, constraints: Sequence[Constraint] = (), seed: int = 0,
               max_queries: int | None = None, inputs: SelectorInputs = SelectorInputs()) -> SelectionResult:
        cfg = self.config
        proxies = inputs.proxies
        if cfg.proxy and proxies is None:
            raise ConfigError(f"selector={self.name} fits on the zero-cost proxies {', '.join(cfg.proxy)}, which this "
                              "command does not compute: run it with `nasframe search` (e.g. evaluator=benchmark), "
                              "or set selector.proxy=[] to fit on the arch encoding alone")
        cell = has_structure(space) if cfg.cell_features is None else cfg.cell_features
        if cell and not has_structure(space):
            raise ConfigError(f"selector.cell_features: space {space.name} has no cell-structure features")
        if cfg.candidates == 0 and space.size > MAX_ENUMERATED:
            raise ConfigError(f"selector.candidates=0 scores every arch of the space, and {space.name} has "
                              f"{space.size:,} (at most {MAX_ENUMERATED:,}): give a pool size")
        budget = cfg.num_queries if max_queries is None else min(cfg.num_queries, max_queries)
        rng = np.random.default_rng(seed)
        log = QueryLog(evaluate, budget)
        components = list(proxies.components) if cfg.proxy else []
        values: dict[Arch, dict[str, float]] = {}  # every arch the proxies scored: the reference of the ranks

        def features_of(arch: Arch) -> dict[str, float]:
            if arch not in values:
                values[arch] = dict(proxies.component_values(arch)) if components else {}
            return values[arch]

        everything = self._whole_space(space, constraints) if cfg.candidates == 0 else None
        rounds = []
        try:
            draws = 0
            while len(log.history) < min(cfg.initial, budget) and draws < cfg.max_tries * cfg.initial:
                draws += 1  # bounded: a small (or constrained) space may hold fewer classes than `initial`
                log(space.canonical(sample_satisfying(space, rng, constraints, cfg.max_tries)), round=0)
            while len(log.history) < budget:
                pool = everything if everything is not None else self._pool(space, log, constraints, rng)
                pool = [a for a in pool if a not in log.scores]
                if not pool:
                    break  # every model meeting the constraints was evaluated
                evaluated = list(log.scores)
                scores = [log.scores[a] for a in evaluated]
                if len(set(scores)) < 2:  # nothing to learn from (e.g. an untrained supernet scores all at chance):
                    order = range(min(cfg.per_round, len(pool)))  # the pool's first (random) candidates instead
                    rounds.append({"pool": len(pool), "evaluated_before": len(evaluated), "guided": False})
                else:
                    reference = [features_of(a) for a in [*evaluated, *pool]]
                    surrogate = ProxySurrogate(space, components, reference, cfg.model, cfg.encode_arch, seed,
                                               cell_features=cell)
                    surrogate.fit(evaluated, [values[a] for a in evaluated], scores)
                    predicted = surrogate.predict(pool, [values[a] for a in pool])
                    order = np.argsort(-predicted, kind="stable")[:cfg.per_round]
                    rounds.append({"pool": len(pool), "evaluated_before": len(evaluated), "guided": True})
                for i in order:
                    log(pool[int(i)], round=len(rounds))
        except QueryBudgetExhausted:
            pass
        result = log.result()
        result.details.update({"features": components, "cell_features": cell, "encode_arch": cfg.encode_arch,
                               "model": cfg.model, "rounds": rounds, "proxy_scored_archs": len(values)})
        return result

    def _whole_space(self, space: SearchSpace, constraints: Sequence[Constraint]) -> list[Arch]:
        """Every isomorphism class of the space that meets the constraints, as its representative."""
        return list(dict.fromkeys(space.canonical(a) for a in space.enumerate() if satisfies(a, constraints)))

    def _pool(self, space: SearchSpace, log: QueryLog, constraints: Sequence[Constraint],
              rng: np.random.Generator) -> list[Arch]:
        """``candidates`` new classes: mutations of the ``parents`` best evaluated archs, then uniform samples."""
        cfg = self.config
        parents = sorted(log.scores, key=log.scores.__getitem__, reverse=True)[:cfg.parents]
        taken, pool = set(log.scores), []
        for draw_mutant, count in ((True, cfg.candidates // 2), (False, cfg.candidates - cfg.candidates // 2)):
            goal, tries = len(pool) + count, 0
            while len(pool) < goal and tries < cfg.max_tries * max(count, 1):
                tries += 1
                if draw_mutant:
                    arch = space.mutate(parents[int(rng.integers(len(parents)))], rng, cfg.mutation_prob)
                else:
                    arch = space.sample(rng)
                arch = space.canonical(arch)
                if arch in taken or not satisfies(arch, constraints):
                    continue
                taken.add(arch)
                pool.append(arch)
        return pool  # empty when the draws found no new class: the search ends
