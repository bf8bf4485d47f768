"""Perturbation-based selection.

"Rethinking Architecture Selection in Differentiable NAS" (Wang et al., ICLR 2021; DARTS-PT). An option's
importance is how much the supernet's validation accuracy drops when that option is removed, not its
architecture weight. Choices are decided one at a time, in random order:

* operation step: for the choice, mask each option in turn out of its mixed op (its term removed, the other
  weights unchanged) and measure the supernet's validation accuracy; the choice keeps the option whose
  removal gives the *lowest* accuracy and is fixed to it;
* topology step (spaces with edge groups: a DARTS node keeps 2 incoming edges): for each group, remove each
  remaining edge in turn (set it to ``none``), and drop the edge whose removal gives the *highest* accuracy,
  until ``keep`` edges remain;
* after each decision the supernet is fine-tuned for ``tune_steps`` steps with the decisions fixed (DARTS-PT
  fine-tunes for a few epochs; the differentiable sampler keeps training the undecided alpha).

On a differentiable supernet (``sampler=darts``) accuracy is measured on the mixture, with BatchNorm batch
statistics as DARTS-PT does. On a single-path supernet (uniform, PA&DA, ...) removing an option restricts the
space, and the accuracy is the mean over ``completions`` archs sampled from the restricted space (the same
sample stream for every option of a choice), each scored by the evaluator (inherited weights, BN
recalibrated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nasframe.core.arch import Arch
from nasframe.core.arch_weights import ArchitectureWeights
from nasframe.core.registry import SELECTORS
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError, InvalidArchError
from nasframe.selection.base import Evaluation, MixtureAccuracy, SelectionResult, Selector, SelectorInputs


@dataclass
class PerturbationConfig:
    tune_steps: int = 0  # fine-tuning steps after each decision (0: none)
    eval_examples: int = 0  # held-out examples per measurement in differentiable mode (0: all)
    completions: int = 10  # single-path mode: sampled archs averaged per measurement
    edge_order: str = "random"  # random | fixed: the order in which choices are decided

    def check(self) -> None:
        if self.tune_steps < 0 or self.eval_examples < 0 or self.completions < 1:
            raise ConfigError("selector (perturbation): need tune_steps >= 0, eval_examples >= 0, completions >= 1")
        if self.edge_order not in ("random", "fixed"):
            raise ConfigError(f"selector (perturbation): edge_order must be random or fixed, got {self.edge_order!r}")


@SELECTORS.register("perturbation")
class PerturbationSelector(Selector):
    """DARTS-PT: keep the option whose removal hurts the supernet most, one choice at a time."""

    name = "perturbation"
    needs_supernet = True
    Config = PerturbationConfig

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.config.check()

    def select(self, space: SearchSpace, evaluate: Any, *, constraints: Any = (), seed: int = 0,
               max_queries: int | None = None, inputs: SelectorInputs = SelectorInputs()) -> SelectionResult:
        """On a differentiable supernet (``inputs.architecture``) measure the mixture and fix choices in it;
        otherwise average sampled completions. ``inputs.tune`` fine-tunes after each decision (``tune_steps``)."""
        if constraints:
            raise ConfigError("selector=perturbation takes no constraints")
        tune = inputs.tune
        if self.config.tune_steps and tune is None:
            raise ConfigError("selector (perturbation): tune_steps > 0 needs a fine-tuning hook (run it through nasframe search)")
        rng = np.random.default_rng(seed)
        differentiable = inputs.architecture is not None
        if differentiable and inputs.mixture_accuracy is None:
            raise ConfigError("selector (perturbation): a differentiable supernet needs a supernet evaluator")
        run: _Run = (_DifferentiableRun(self, space, inputs.architecture, inputs.mixture_accuracy) if differentiable
                     else _SinglePathRun(self, space, evaluate, rng))
        grouped = {name for group in space.edge_groups() for name in group.choices}
        order = [c.name for c in space.choices if len(c) > 1 and not run.is_decided(c.name)]
        if self.config.edge_order == "random":
            order = [order[k] for k in rng.permutation(len(order))]
        decisions: list[dict[str, Any]] = []
        for name in order:  # operation step
            options = [o for o in space.choice(name).options if not (name in grouped and o == space.zero_option)]
            scores = {o: run.accuracy_without(name, o) for o in options}
            best = min(scores, key=lambda o: scores[o])
            run.decide_op(name, best)
            decisions.append({"step": "operation", "choice": name, "accuracy_without": scores, "kept": best})
            self._tune(run, tune)
        groups = list(space.edge_groups())
        if self.config.edge_order == "random":
            groups = [groups[k] for k in rng.permutation(len(groups))]
        for group in groups:  # topology step
            edges = [n for n in group.choices if run.option_of(n) != space.zero_option]
            while len(edges) > group.keep:
                scores = {n: run.accuracy_without_edge(n) for n in edges}
                drop = max(scores, key=lambda n: scores[n])
                run.remove_edge(drop)
                edges.remove(drop)
                decisions.append({"step": "topology", "group": group.name, "accuracy_without": scores, "removed": drop})
            run.keep_edges(edges)
            self._tune(run, tune)
        arch = space.validate(run.arch())
        score = float(evaluate(arch))
        return SelectionResult(arch, score, [Evaluation(arch, score, 1)],
                               {"mode": "differentiable" if differentiable else "single-path", "decisions": decisions})

    def _tune(self, run: "_Run", tune: Any) -> None:
        if self.config.tune_steps:
            tune(self.config.tune_steps, run.tuning_space())


class _Run:
    """The state of one perturbation selection: which options are still possible for each choice."""

    def is_decided(self, name: str) -> bool: ...
    def option_of(self, name: str) -> str | None: ...
    def accuracy_without(self, name: str, option: str) -> float: ...
    def accuracy_without_edge(self, name: str) -> float: ...
    def decide_op(self, name: str, option: str) -> None: ...
    def remove_edge(self, name: str) -> None: ...
    def keep_edges(self, names: list[str]) -> None: ...
    def tuning_space(self) -> SearchSpace | None: ...
    def arch(self) -> Arch: ...


class _DifferentiableRun(_Run):
    """Measurements on the mixed supernet; decisions fix choices in the differentiable sampler."""

    def __init__(self, selector: PerturbationSelector, space: SearchSpace, architecture: ArchitectureWeights,
                 mixture_accuracy: MixtureAccuracy) -> None:
        self.space, self.architecture, self.mixture_accuracy = space, architecture, mixture_accuracy
        self.limit = selector.config.eval_examples or None

    def is_decided(self, name: str) -> bool:
        return name in self.architecture.fixed

    def option_of(self, name: str) -> str | None:
        return self.architecture.fixed.get(name)

    def accuracy_without(self, name: str, option: str) -> float:
        options = self.space.choice(name).options
        include = {name: torch.tensor([o != option for o in options])}
        return self.mixture_accuracy(self.architecture.mixture(), include, self.limit)

    def accuracy_without_edge(self, name: str) -> float:
        mixture = self.architecture.mixture()
        mixture[name] = self.space.zero_option
        return self.mixture_accuracy(mixture, None, self.limit)

    def decide_op(self, name: str, option: str) -> None:
        self.architecture.fix({name: option})

    def remove_edge(self, name: str) -> None:
        self.architecture.fix({name: self.space.zero_option})

    def keep_edges(self, names: list[str]) -> None:
        pass  # kept edges are already fixed to their op

    def tuning_space(self) -> SearchSpace | None:
        return None

    def arch(self) -> Arch:
        return Arch({c.name: self.architecture.fixed.get(c.name, c.options[0]) for c in self.space.choices})


class _SinglePathRun(_Run):
    """Measurements as mean accuracy over sampled completions of a restricted space."""

    def __init__(self, selector: PerturbationSelector, space: SearchSpace, evaluate: Any, rng: np.random.Generator) -> None:
        self.space, self.evaluate = space, evaluate
        self.completions = selector.config.completions
        self.rng = rng
        self.allowed = {c.name: list(c.options) for c in space.choices}
        self._seed = 0

    def _current(self) -> SearchSpace:
        return self.space.restrict(self.allowed)

    def is_decided(self, name: str) -> bool:
        return len(self.allowed[name]) == 1

    def option_of(self, name: str) -> str | None:
        non_zero = [o for o in self.allowed[name] if o != self.space.zero_option]
        return non_zero[0] if len(non_zero) == 1 else (self.space.zero_option if not non_zero else None)

    def _mean_accuracy(self, allowed: dict[str, list[str]]) -> float:
        try:
            sub = self.space.restrict(allowed)
            rng = np.random.default_rng(self._seed)  # the same stream for every alternative of one decision
            archs = [sub.sample(rng) for _ in range(self.completions)]
        except InvalidArchError:
            return float("inf")  # no valid arch without it: removing it hurts most
        return float(np.mean([self.evaluate(a) for a in archs]))

    def accuracy_without(self, name: str, option: str) -> float:
        allowed = dict(self.allowed)
        allowed[name] = [o for o in self.allowed[name] if o != option]
        return self._mean_accuracy(allowed)

    def accuracy_without_edge(self, name: str) -> float:
        allowed = dict(self.allowed)
        allowed[name] = [self.space.zero_option]
        return self._mean_accuracy(allowed)

    def _next_decision(self) -> None:
        self._seed += 1

    def decide_op(self, name: str, option: str) -> None:
        grouped = any(name in g.choices for g in self.space.edge_groups())
        self.allowed[name] = [option, self.space.zero_option] if grouped else [option]  # topology decided later
        self._next_decision()

    def remove_edge(self, name: str) -> None:
        self.allowed[name] = [self.space.zero_option]
        self._next_decision()

    def keep_edges(self, names: list[str]) -> None:
        for name in names:
            self.allowed[name] = [o for o in self.allowed[name] if o != self.space.zero_option]

    def tuning_space(self) -> SearchSpace | None:
        return self._current()

    def arch(self) -> Arch:
        return Arch({name: options[0] for name, options in self.allowed.items()})
