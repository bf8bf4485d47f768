"""Constraints that a selector enforces on candidate archs (budgets on parameters, latency, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace


class Constraint(Protocol):
    """Accepts or rejects an arch. ``describe`` says what it checks, for reports."""

    def __call__(self, arch: Arch) -> bool: ...

    def describe(self) -> str: ...


class ParamBudget:
    """Rejects archs whose standalone subnet has more than ``max_params`` parameters (cached per arch)."""

    def __init__(self, space: SearchSpace, max_params: int) -> None:
        self.space = space
        self.max_params = int(max_params)
        self._cache: dict[Arch, int] = {}

    def params(self, arch: Mapping[str, str]) -> int:
        arch = Arch(arch) if not isinstance(arch, Arch) else arch
        if arch not in self._cache:
            self._cache[arch] = self.space.count_params(arch)
        return self._cache[arch]

    def __call__(self, arch: Arch) -> bool:
        return self.params(arch) <= self.max_params

    def describe(self) -> str:
        return f"params <= {self.max_params:,}"


def satisfies(arch: Arch, constraints: Sequence[Constraint]) -> bool:
    return all(constraint(arch) for constraint in constraints)
