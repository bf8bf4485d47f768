"""Magnitude selection: read the arch off the architecture parameters.

"DARTS: Differentiable Architecture Search" (Liu et al., ICLR 2019), Sec. 2.4: the discrete arch keeps, for
each choice, the option with the largest mixing weight ``softmax(alpha)``. Where the space ties edges
together (an :class:`~nasframe.core.space.EdgeGroup`: a DARTS node keeps 2 incoming edges), each edge's
strength is its largest weight over the options other than ``none``; the group keeps its ``keep`` strongest
edges with that best op, and its other edges become ``none``. Choices outside groups take their argmax over
all options, ``none`` included (how DARTS is read out on NAS-Bench-201).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from nasframe.core.arch import Arch
from nasframe.core.registry import SELECTORS
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError
from nasframe.selection.base import Evaluation, SelectionResult, Selector, SelectorInputs


@dataclass
class MagnitudeConfig:
    pass


def magnitude_arch(space: SearchSpace, weights: Mapping[str, torch.Tensor]) -> Arch:
    """The DARTS read-out of ``weights`` (choice -> mixing weights over its options in the space's order)."""
    zero = space.zero_option
    chosen: dict[str, str] = {}
    grouped: set[str] = set()
    for group in space.edge_groups():
        strength, best_op = {}, {}
        for name in group.choices:
            options = space.choice(name).options
            w = weights[name]
            candidates = [(float(w[k]), o) for k, o in enumerate(options) if o != zero]
            strength[name], best_op[name] = max(candidates)
        kept = sorted(group.choices, key=lambda n: strength[n], reverse=True)[: group.keep]
        for name in group.choices:
            chosen[name] = best_op[name] if name in kept else zero  # type: ignore[assignment]
        grouped.update(group.choices)
    for choice in space.choices:
        if choice.name not in grouped:
            chosen[choice.name] = choice.options[int(torch.argmax(weights[choice.name]))]
    return space.validate(Arch({c.name: chosen[c.name] for c in space.choices}))


@SELECTORS.register("magnitude")
class MagnitudeSelector(Selector):
    """Argmax of the architecture parameters (DARTS); needs a differentiable sampler (``sampler=darts``)."""

    name = "magnitude"
    needs_supernet = True
    Config = MagnitudeConfig
    needs_architecture_weights = True

    def select(self, space: SearchSpace, evaluate: Any, *, constraints: Any = (), seed: int = 0,
               max_queries: int | None = None, inputs: SelectorInputs = SelectorInputs()) -> SelectionResult:
        architecture = inputs.architecture
        if architecture is None:
            raise ConfigError("selector=magnitude reads architecture parameters: train with a differentiable sampler "
                              "(sampler=darts)")
        if constraints:
            raise ConfigError("selector=magnitude takes no constraints (it reads one arch off the weights)")
        weights = {name: w.detach().cpu() for name, w in architecture.weights().items()}
        for name, option in architecture.fixed.items():
            weights[name] = torch.tensor([1.0 if o == option else 0.0 for o in space.choice(name).options])
        arch = magnitude_arch(space, weights)
        score = float(evaluate(arch))
        details = {"softmax_alpha": {name: [round(float(v), 6) for v in w] for name, w in weights.items()}}
        return SelectionResult(arch, score, [Evaluation(arch, score, 1)], details)
