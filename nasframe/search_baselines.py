"""The baselines of a search run, measured the way its pick was.

Beside the selected arch, every search report shows the largest arch (most parameters) that meets the run's
constraints and random search with the same number of evaluations through the same evaluator and constraints
(:mod:`nasframe.selection.baselines`), each scored by the run's evaluator; with trained weights also the test
accuracy of its extracted subnet, and with ``benchmark=...`` the benchmark's true accuracy of every row. An
evaluator may name archs of its own to beat (``baseline_archs``): the learned one (``evaluator=learned``) the best
of the archs it was fitted on, which were evaluated for real (random search with that many true evaluations). A
pick that does not beat these has not earned its search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nasframe.benchmarks.base import build_benchmark
from nasframe.core.arch import Arch
from nasframe.selection.base import SelectionResult
from nasframe.selection.baselines import BaselineRow, baseline_rows, render_baselines


@dataclass
class SearchBaselines:
    rows: list[BaselineRow]  # the pick, the largest arch, random search
    truth_metric: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"truth_metric": self.truth_metric, "rows": [r.to_dict() for r in self.rows], "notes": self.notes}


def measure_baselines(setup: Any, result: SelectionResult, evaluate: Callable[[Arch], float], trained: bool,
                      test_accuracy: Callable[[Arch], float] | None = None) -> SearchBaselines:
    """Rows for the pick and its baselines, all scored by ``evaluate``; ``test_accuracy(arch)`` (trained runs)
    measures each on the test split; the run's benchmark (``setup.cfg.benchmark``), if any, gives true
    accuracies."""
    space, cfg = setup.space, setup.cfg
    truth, metric = benchmark_truth(cfg)
    true_accuracy = (lambda arch: truth(space.format(arch))) if truth is not None else None
    rows = baseline_rows(space, evaluate, result, setup.constraints, seed=cfg.seed, test_accuracy=test_accuracy,
                         true_accuracy=true_accuracy)
    own = getattr(evaluate, "baseline_archs", None)  # an evaluator's own archs to beat (learned: its best label)
    for label, arch in (own() if own is not None else {}).items():
        rows.append(BaselineRow(label, space.format(arch), float(evaluate(arch)), space.count_params(arch),
                                None if test_accuracy is None else float(test_accuracy(arch)),
                                None if true_accuracy is None else true_accuracy(arch)))
    notes = [] if trained else ["no arch was trained: scores are proxy values; accuracies need training or a benchmark"]
    return SearchBaselines(rows, metric, notes)


def benchmark_truth(cfg: Any) -> tuple[Callable[[str], float] | None, str | None]:
    """The run's benchmark lookup ``native -> true accuracy`` and its metric (``baselines.truth_metric``, or the
    benchmark's first ``*_test`` metric); ``(None, None)`` without a benchmark."""
    if cfg.get("benchmark") is None:
        return None, None
    benchmark = build_benchmark(cfg.benchmark)
    metric = cfg.baselines.truth_metric or next((m for m in benchmark.metrics if m.endswith("_test")), None)
    if metric is None:
        return None, None
    benchmark.check_metric(metric)
    return (lambda native: benchmark.metric(native, metric)), metric


def baseline_section(baselines: SearchBaselines, constraints: Any = ()) -> list[str]:
    """The report's markdown section: one row per arch, the pick first."""
    text = render_baselines(baselines.rows, constraints, truth_metric=baselines.truth_metric)
    return [*text.splitlines(), *[f"- {n}" for n in baselines.notes], ""]
