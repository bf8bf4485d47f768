"""The benchmark evaluator: an arch's score is the accuracy a tabular benchmark recorded for it after training.

``evaluator=benchmark benchmark=nb201`` stands in for training every arch a selector evaluates: each evaluation is
one lookup of ``metric`` (default: the benchmark's first ``*_valid`` metric, else its first ``*_test``) in the
table, as the NAS-Bench papers query their tables to compare search strategies by their number of evaluations. No
network is built or trained, so a search with it is a training-free run; its report gives the pick beside the
largest arch and random search with as many evaluations (random-N of the table).

Where the table holds test accuracy only (``../shared/data/nb201``), the search metric is the reported metric and
the best of N evaluations is the best of N test accuracies: report it as such, with the other data sets' columns
as the check that was not searched on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from nasframe.benchmarks.base import TabularBenchmark
from nasframe.core.arch import Arch
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError


@dataclass
class BenchmarkEvaluatorConfig:
    name: str = "benchmark"
    metric: Optional[str] = None  # the recorded accuracy used as score (default: first *_valid, else first *_test)


def default_metric(benchmark: TabularBenchmark, metric: Optional[str], key: str) -> str:
    """``metric`` checked against ``benchmark``, or the benchmark's first ``*_valid`` metric, else its first
    ``*_test`` (``key`` names the setting in the error)."""
    chosen = metric or next((m for suffix in ("_valid", "_test") for m in benchmark.metrics if m.endswith(suffix)),
                            None)
    if chosen is None:
        raise ConfigError(f"{key}: {benchmark.name} has no *_valid or *_test metric; name one")
    benchmark.check_metric(chosen)
    return chosen


class BenchmarkEvaluator:
    """Scores archs by a benchmark's recorded accuracy (see the module docstring)."""

    def __init__(self, space: SearchSpace, benchmark: TabularBenchmark, config: BenchmarkEvaluatorConfig) -> None:
        if benchmark.space_name != space.name:
            raise ConfigError(f"evaluator=benchmark: {benchmark.name} holds {benchmark.space_name} archs, the run "
                              f"searches {space.name}")
        self.space, self.benchmark, self.config = space, benchmark, config
        self.metric = default_metric(benchmark, config.metric, "evaluator.metric")
        self.cache: dict[Arch, float] = {}
        self.components: list[str] = []  # no proxy: the score is the recorded accuracy

    def __call__(self, arch: Mapping[str, str]) -> float:
        arch = self.space.validate(arch)
        score = self.cache.get(arch)
        if score is None:
            score = self.cache[arch] = float(self.benchmark.metric(self.space.format(arch), self.metric))
        return score

    @property
    def evaluations(self) -> int:
        """The distinct archs looked up so far (each stands for one arch trained)."""
        return len(self.cache)

    def summary(self) -> str:
        return f"the recorded {self.metric} of {self.benchmark.name} (one lookup stands for one arch trained)"

    def describe(self) -> dict[str, Any]:
        return {"evaluator": "benchmark", "benchmark": self.benchmark.name, "metric": self.metric}
