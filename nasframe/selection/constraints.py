"""Constraints that a selector enforces on candidate archs (budgets on parameters, latency, ...)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol

import numpy as np

from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError

if TYPE_CHECKING:
    from nasframe.hardware.predictor import LatencyPredictor


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

    def known(self, arch: Mapping[str, str]) -> Optional[int]:
        """The parameter count of ``arch`` if this budget has counted it already, else None (no counting)."""
        return self._cache.get(Arch(arch) if not isinstance(arch, Arch) else arch)

    def __call__(self, arch: Arch) -> bool:
        return self.params(arch) <= self.max_params

    def describe(self) -> str:
        return f"params <= {self.max_params:,}"


class LatencyBudget:
    """Predicted latency of archs (a :class:`~nasframe.hardware.predictor.LatencyPredictor`, cached per arch);
    rejects archs predicted slower than ``max_ms``. With ``max_ms=None`` it rejects nothing and only supplies
    latencies, e.g. to the evolutionary selector's Pareto mode."""

    def __init__(self, predictor: "LatencyPredictor", max_ms: Optional[float] = None) -> None:
        if max_ms is not None and not max_ms > 0:
            raise ConfigError(f"constraints.max_latency_ms must be > 0, got {max_ms}")
        self.predictor = predictor
        self.max_ms = None if max_ms is None else float(max_ms)
        self._cache: dict[Arch, float] = {}

    def latency(self, arch: Mapping[str, str]) -> float:
        arch = Arch(arch) if not isinstance(arch, Arch) else arch
        if arch not in self._cache:
            self._cache[arch] = self.predictor.predict_one(arch)
        return self._cache[arch]

    def latencies(self, archs: Iterable[Mapping[str, str]]) -> np.ndarray:
        """Predicted ms of a population, in one array operation for the archs not seen before."""
        archs = [Arch(a) if not isinstance(a, Arch) else a for a in archs]
        new = [a for a in dict.fromkeys(archs) if a not in self._cache]
        if new:
            self._cache.update(zip(new, (float(v) for v in self.predictor.predict(new))))
        return np.array([self._cache[a] for a in archs], dtype=np.float64)

    def __call__(self, arch: Arch) -> bool:
        return self.max_ms is None or self.latency(arch) <= self.max_ms

    def describe(self) -> str:
        device = self.predictor.key.device
        if self.max_ms is None:
            return f"latency predicted for {device} (no budget)"
        return f"predicted latency <= {self.max_ms:g} ms on {device}"


def load_latency_budget(space: SearchSpace, table: str | Path, max_ms: Optional[float]) -> LatencyBudget:
    """A :class:`LatencyBudget` from a latency table file (``nasframe latency`` writes one); the table must have
    been built for this space (same choices and settings), on any device and batch size."""
    from nasframe.hardware.lut import find_adapter, table_arch_map
    from nasframe.hardware.predictor import LatencyTableError, PredictorKey, load_predictor

    predictor = load_predictor(table)
    expected = PredictorKey(device="", batch_size=None, torch_version="", space=space.describe())
    problems = predictor.key.mismatches(expected, ignore=("device", "batch_size", "torch_version"))
    if problems:
        raise LatencyTableError(f"latency table {table} was built for another space: " + "; ".join(problems))
    table_names = {c.name for c in predictor.encoder.choices}
    if table_names != {c.name for c in space.choices}:  # the table has terms for the adapter's table choices
        predictor = predictor.with_arch_map(table_arch_map(find_adapter(space)))
    return LatencyBudget(predictor, max_ms)


def latency_source(constraints: Sequence[Constraint]) -> LatencyBudget | None:
    """The first latency constraint among ``constraints`` (it predicts latencies), if any."""
    return next((c for c in constraints if isinstance(c, LatencyBudget)), None)


def satisfies(arch: Arch, constraints: Sequence[Constraint]) -> bool:
    return all(constraint(arch) for constraint in constraints)
