"""The selector interface and its result.

``select(space, evaluator, constraints=..., seed=..., inputs=...)`` returns a :class:`SelectionResult` with the
chosen arch, its score and the full history of evaluated archs. The evaluator is any callable ``arch -> score``
(higher is better): a supernet evaluator, a training-free one, or a tabular benchmark's query. Query-based
selectors (random, evolutionary) subclass :class:`QuerySelector`; selectors that work on the trained supernet
itself (magnitude, perturbation) declare what they need (``needs_architecture_weights``, ``needs_supernet``) and
receive it explicitly in :class:`SelectorInputs`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from nasframe.core.arch import Arch
from nasframe.core.arch_weights import ArchitectureWeights
from nasframe.core.modules import Mixture
from nasframe.core.registry import SELECTORS
from nasframe.core.settings import Configurable
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError, NasframeError
from nasframe.selection.constraints import Constraint, satisfies

Evaluate = Callable[[Arch], float]
#: ``tune(steps, space)``: train the supernet ``steps`` more steps, sampling paths from ``space`` (or the
#: sampler's own space when ``None``)
Tune = Callable[[int, Optional[SearchSpace]], None]
#: ``mixture_accuracy(mixture, include, limit)``: held-out accuracy of the supernet run as ``mixture``, with the
#: options of ``include`` (choice -> option mask) only, on at most ``limit`` examples (``None``: all)
MixtureAccuracy = Callable[[Mixture, Optional[Mapping[str, Any]], Optional[int]], float]


@dataclass(frozen=True)
class SelectorInputs:
    """What a selector receives besides the evaluator, each only where the run has it: the architecture weights of
    a differentiable method, the fine-tuning hook, the accuracy of a mixture (perturbation selection on a
    differentiable supernet), and the zero-cost proxies that a selector's :meth:`Selector.proxy_config` asks for
    (an object with ``components`` and ``component_values(arch)``, as
    :class:`~nasframe.evaluation.zero_cost.evaluator.ZeroCostEvaluator`)."""

    architecture: ArchitectureWeights | None = None
    tune: Tune | None = None
    mixture_accuracy: MixtureAccuracy | None = None
    proxies: Any = None


@dataclass
class Evaluation:
    """One evaluated arch: its score, the query number (1-based) and the round (generation) it came from."""

    arch: Arch
    score: float
    query: int
    round: int = 0


@dataclass
class SelectionResult:
    arch: Arch
    score: float
    history: list[Evaluation] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # selector-specific record (weights, decisions)

    def best_so_far(self) -> list[float]:
        """Best score after each query (for search curves)."""
        curve, best = [], -np.inf
        for record in self.history:
            best = max(best, record.score)
            curve.append(best)
        return curve

    def to_dict(self, space: SearchSpace) -> dict[str, Any]:
        return {
            "arch": self.arch.to_dict(),
            "native": space.format(self.arch),
            "score": self.score,
            "history": [
                {"query": r.query, "round": r.round, "score": r.score, "arch": space.format(r.arch)}
                for r in self.history
            ],
            **({"details": self.details} if self.details else {}),
        }

    def to_json(self, space: SearchSpace) -> str:
        return json.dumps(self.to_dict(space), indent=1)


class QueryBudgetExhausted(Exception):
    """Raised by :class:`QueryLog` when a selector asks for one query more than its budget."""


class QueryLog:
    """Evaluates archs once each (at most ``max_queries`` of them), records the history, tracks the best."""

    def __init__(self, evaluate: Evaluate, max_queries: int | None = None) -> None:
        self.evaluate = evaluate
        self.max_queries = max_queries
        self.scores: dict[Arch, float] = {}
        self.history: list[Evaluation] = []

    def __call__(self, arch: Arch, round: int = 0) -> float:
        if arch not in self.scores:
            if self.max_queries is not None and len(self.history) >= self.max_queries:
                raise QueryBudgetExhausted
            score = float(self.evaluate(arch))
            self.scores[arch] = score
            self.history.append(Evaluation(arch, score, len(self.history) + 1, round))
        return self.scores[arch]

    def result(self) -> SelectionResult:
        if not self.history:
            raise NasframeError("the selector evaluated no arch: are the constraints satisfiable?")
        best = max(self.history, key=lambda r: r.score)
        return SelectionResult(best.arch, best.score, list(self.history))


class Selector(Configurable, ABC):
    """Base class of selectors: settings in ``Config``; subclasses implement :meth:`select`."""

    name = "selector"
    #: set by selectors that read a differentiable method's architecture weights (magnitude):
    #: ``inputs.architecture`` is then required
    needs_architecture_weights: bool = False
    #: set by selectors that read or fine-tune the trained supernet itself (magnitude, perturbation), which a
    #: training-free search (``evaluator=zero_cost``) does not have
    needs_supernet: bool = False

    def __init__(self, **settings: Any) -> None:
        self._init_config(settings, where="selector")

    @abstractmethod
    def select(self, space: SearchSpace, evaluate: Evaluate, *, constraints: Sequence[Constraint] = (), seed: int = 0,
               max_queries: int | None = None, inputs: SelectorInputs = SelectorInputs()) -> SelectionResult:
        """Choose an arch of ``space``, evaluating at most ``max_queries`` distinct archs (if given)."""

    def check_constraints(self, constraints: Sequence[Constraint]) -> None:
        """Refuse constraints the selector cannot work with (called before training starts, and by select)."""

    def proxy_config(self) -> Any:
        """The settings (a ``ZeroCostConfig``) of zero-cost proxies this selector reads through
        ``inputs.proxies``, which the run then computes; ``None`` (the default): it reads none."""
        return None


class QuerySelector(Selector):
    """A selector that evaluates archs one query at a time (random search, evolution); subclasses implement
    :meth:`_search`, and the best arch evaluated is the result."""

    def select(self, space: SearchSpace, evaluate: Evaluate, *, constraints: Sequence[Constraint] = (), seed: int = 0,
               max_queries: int | None = None, inputs: SelectorInputs = SelectorInputs()) -> SelectionResult:
        self.check_constraints(constraints)
        log = QueryLog(evaluate, max_queries)
        try:
            self._search(space, log, constraints, np.random.default_rng(seed))
        except QueryBudgetExhausted:
            pass
        result = log.result()
        result.details.update(self._details(space, log, constraints))
        return result

    def _details(self, space: SearchSpace, log: QueryLog, constraints: Sequence[Constraint]) -> dict[str, Any]:
        """A selector-specific record for :attr:`SelectionResult.details` (e.g. a Pareto front)."""
        return {}

    @abstractmethod
    def _search(
        self,
        space: SearchSpace,
        log: QueryLog,
        constraints: Sequence[Constraint],
        rng: np.random.Generator,
    ) -> None:
        """Evaluate archs through ``log``; the best arch it saw is the result."""


def sample_satisfying(
    space: SearchSpace, rng: np.random.Generator, constraints: Sequence[Constraint], max_tries: int
) -> Arch:
    """A uniform sample of the space that meets the constraints (rejection sampling)."""
    for _ in range(max_tries):
        arch = space.sample(rng)
        if satisfies(arch, constraints):
            return arch
    described = "; ".join(c.describe() for c in constraints)
    raise NasframeError(f"no arch meeting the constraints ({described}) in {max_tries} uniform samples")


def check_architecture_weights(selector: Selector, sampler: Any) -> None:
    """Refuse a training method without architecture weights for a selector that reads them (checked before
    training starts)."""
    if selector.needs_architecture_weights and not isinstance(sampler, ArchitectureWeights):
        raise ConfigError(
            f"selector={selector.name} reads architecture parameters: train with a differentiable sampler "
            f"(sampler=darts), not sampler={sampler.name if sampler is not None else None}"
        )


def build_selector(node: Mapping[str, Any] | Any) -> Selector:
    return SELECTORS.build(node, "selector")
