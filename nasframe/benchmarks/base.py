"""The tabular benchmark interface.

A benchmark answers ``query(native) -> {metric: value}`` for an arch given by its native string (the space
formats archs with ``space.format``), e.g. ``{"cifar10_test": 94.37, "cifar100_test": 73.51, ...}``.
Benchmarks never import a search space: the native string is the contract between them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any

from nasframe.core.registry import Registry
from nasframe.errors import ConfigError, InvalidArchError

BENCHMARKS: Registry[Any] = Registry("benchmark", "nasframe.benchmarks", ("nasframe.benchmarks.nb201", "nasframe.benchmarks.nasbench_graph"))


class TabularBenchmark(ABC):
    name = "benchmark"
    space_name = ""  # the search space whose native strings this benchmark is keyed by

    @property
    @abstractmethod
    def metrics(self) -> tuple[str, ...]:
        """Names of the metrics ``query`` returns."""

    @abstractmethod
    def query(self, native: str) -> dict[str, float]:
        """All known metrics of an arch; raises :class:`InvalidArchError` for an arch it does not hold."""

    @abstractmethod
    def archs(self) -> Iterator[str]:
        """Native strings of every arch the benchmark holds."""

    def metric(self, native: str, metric: str) -> float:
        values = self.query(native)
        if metric not in values:
            raise ConfigError(f"{self.name}: no metric {metric!r}; metrics: {', '.join(self.metrics)}")
        return values[metric]

    def check_metric(self, metric: str) -> str:
        if metric not in self.metrics:
            raise ConfigError(f"{self.name}: no metric {metric!r}; metrics: {', '.join(self.metrics)}")
        return metric

    def _missing(self, native: str) -> InvalidArchError:
        return InvalidArchError(f"{self.name}: no entry for arch {native!r}")


def build_benchmark(node: Mapping[str, Any] | Any) -> TabularBenchmark:
    return BENCHMARKS.build(node, "benchmark")
