"""Tabular search: selectors run against a benchmark instead of a supernet.

Each selector searches with ``search_metric`` from the benchmark as its evaluator, under a budget of
``max_queries`` distinct archs, once per seed. After each query the arch with the best ``search_metric``
so far is the incumbent; its ``report_metric`` is the curve's value ("best true accuracy vs number of
queries"). Curves are averaged over seeds, with their standard deviation.

With the NAS-Bench-201 table (test accuracies only) search and report metric are both the test accuracy:
an oracle comparison of search strategies. With the API source, search on ``cifar10_valid`` and report
``cifar10_test`` as the NAS-Bench-201 paper does.

Baselines. Beside the selectors' curves the report shows the largest arch of the space (most parameters,
:func:`~nasframe.selection.baselines.find_largest`; no query needed, so a horizontal line) with its
``report_metric`` from the benchmark, and names the random-search selectors (the default ``random``) as the
query baseline: a selector whose curve does not rise above both has not earned its queries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nasframe.benchmarks.base import TabularBenchmark
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError, InvalidArchError
from nasframe.markdown import markdown_table
from nasframe.selection.base import Evaluation, Selector
from nasframe.selection.baselines import find_largest
from nasframe.selection.random_search import RandomSearch


def incumbent_curve(history: list[Evaluation], report: Any, length: int) -> list[float]:
    """``report(arch)`` of the best-scored arch after each query, padded to ``length`` with the last value."""
    curve: list[float] = []
    best_score, best_report = -np.inf, np.nan
    for record in history:
        if record.score > best_score:
            best_score, best_report = record.score, report(record.arch)
        curve.append(best_report)
    return curve + [curve[-1]] * (length - len(curve)) if curve else [np.nan] * length


def largest_arch_baseline(space: SearchSpace, benchmark: TabularBenchmark, search_metric: str,
                          report_metric: str) -> dict[str, Any]:
    """The largest arch of the space (most parameters) and its benchmark values: the no-search baseline.

    Its metrics are None, with a note, when the benchmark holds no entry for it."""
    largest = find_largest(space)
    native = space.format(largest.arch)
    record: dict[str, Any] = {"arch": native, "params": largest.params, "found_by": largest.method,
                              "exact": largest.exact, "search_metric": None, "report_metric": None}
    try:
        record["search_metric"] = benchmark.metric(native, search_metric)
        record["report_metric"] = benchmark.metric(native, report_metric)
    except InvalidArchError as error:
        record["note"] = str(error)
    return record


def tabular_search(
    space: SearchSpace,
    benchmark: TabularBenchmark,
    selectors: Mapping[str, Selector],
    *,
    search_metric: str,
    report_metric: str,
    max_queries: int,
    seeds: int,
) -> dict[str, Any]:
    """Run every selector once per seed against the benchmark; the curves, the optimum and the baselines
    (the largest arch's values, the labels of the random-search selectors) as a JSON-ready dict."""
    benchmark.check_metric(search_metric)
    benchmark.check_metric(report_metric)

    def search_value(arch):
        return benchmark.metric(space.format(arch), search_metric)

    def report_value(arch):
        return benchmark.metric(space.format(arch), report_metric)

    out: dict[str, Any] = {
        "protocol": {
            "search_metric": search_metric,
            "report_metric": report_metric,
            "max_queries": max_queries,
            "seeds": list(range(seeds)),
            "benchmark": benchmark.name,
            "space": space.name,
        },
        "optimum": max(benchmark.metric(n, report_metric) for n in benchmark.archs()),
        "baselines": {
            "largest_arch": largest_arch_baseline(space, benchmark, search_metric, report_metric),
            "random_search": [label for label, s in selectors.items() if isinstance(s, RandomSearch)],
        },
        "selectors": {},
    }
    for label, selector in selectors.items():
        curves = []
        for seed in range(seeds):
            result = selector.select(space, search_value, seed=seed, max_queries=max_queries)
            curves.append(incumbent_curve(result.history, report_value, max_queries))
        array = np.asarray(curves, dtype=float)
        out["selectors"][label] = {
            "settings": {"name": label, **vars(selector.config)},
            "mean": array.mean(axis=0).tolist(),
            "std": array.std(axis=0).tolist(),
            "final_per_seed": array[:, -1].tolist(),
        }
    return out


def _baseline_label(result: dict[str, Any], label: str) -> str:
    """A selector's label, marked as the baseline where it is random search."""
    random_labels = result.get("baselines", {}).get("random_search", [])
    return f"{label} (baseline: random search)" if label in random_labels else label


def _largest(result: dict[str, Any]) -> dict[str, Any] | None:
    """The largest-arch baseline of a result, if it has a benchmark value."""
    largest = result.get("baselines", {}).get("largest_arch")
    return largest if largest and largest.get("report_metric") is not None else None


def render_markdown(result: dict[str, Any], checkpoints: tuple[int, ...] = (10, 25, 50, 100, 200, 300, 500, 1000)) -> str:
    p = result["protocol"]
    marks = [q for q in checkpoints if q <= p["max_queries"]]
    lines = [
        f"# Tabular search on {p['benchmark']} ({p['space']})",
        "",
        f"Search on `{p['search_metric']}`, report `{p['report_metric']}` of the incumbent; "
        f"{len(p['seeds'])} seeds, up to {p['max_queries']} queries. Optimum: {result['optimum']:.2f}.",
        "",
    ]
    rows = [[_baseline_label(result, label)] + [f"{r['mean'][q - 1]:.2f} ± {r['std'][q - 1]:.2f}" for q in marks]
            for label, r in result["selectors"].items()]
    largest = result.get("baselines", {}).get("largest_arch")
    value = largest["report_metric"] if largest is not None else None
    if largest is not None:
        rows.append(["largest arch (baseline, no queries)"] + [None if value is None else f"{value:.2f}" for _ in marks])
    lines.append(markdown_table(["selector"] + [f"{q} queries" for q in marks], rows, "l" + "r" * len(marks)))
    if largest is not None:
        native = largest["arch"]  # in a code span outside a table: no escaping
        lines += [
            "",
            f"Baselines: the largest arch of the space, `{native}` ({largest['params']:,} parameters, found by "
            f"{largest['found_by']}), scores {value:.2f} on `{p['report_metric']}` without a query"
            if value is not None else
            f"Baselines: the largest arch of the space, `{native}` ({largest['params']:,} parameters), is not in "
            f"the benchmark ({largest.get('note', 'no entry')})",
        ]
        randoms = result["baselines"].get("random_search", [])
        lines[-1] += (f"; random search ({', '.join(randoms)}) is the query baseline." if randoms else
                      "; no random-search selector ran, so the query baseline is missing.")
    lines.append("")
    return "\n".join(lines)


def plot_curves(result: dict[str, Any], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = result["protocol"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    queries = np.arange(1, p["max_queries"] + 1)
    for label, r in result["selectors"].items():
        mean, std = np.asarray(r["mean"]), np.asarray(r["std"])
        ax.plot(queries, mean, label=_baseline_label(result, label))
        ax.fill_between(queries, mean - std, mean + std, alpha=0.2)
    ax.axhline(result["optimum"], color="grey", linestyle="--", linewidth=1, label=f"optimum {result['optimum']:.2f}")
    largest = _largest(result)
    if largest is not None:
        ax.axhline(largest["report_metric"], color="black", linestyle=":", linewidth=1,
                   label=f"largest arch (baseline) {largest['report_metric']:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("queries (distinct archs evaluated)")
    ax.set_ylabel(f"{p['report_metric']} of the incumbent")
    ax.set_title(f"{p['benchmark']}: mean ± std over {len(p['seeds'])} seeds", fontsize=9)
    lo = min(np.asarray(r["mean"])[min(9, len(r["mean"]) - 1)] for r in result["selectors"].values())
    if largest is not None:
        lo = min(lo, largest["report_metric"])
    ax.set_ylim(lo - 2, result["optimum"] + 0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_tabular(cfg: Any, out: Path) -> str:
    """``nasframe tabular``: build the space, benchmark and selectors of ``cfg`` (a TabularConfig), run the
    comparison, write ``tabular.json``, ``tabular.md`` and ``tabular.png`` into ``out``; returns the markdown."""
    from nasframe.benchmarks.base import build_benchmark
    from nasframe.core.registry import SPACES
    from nasframe.core.space import DataSpec
    from nasframe.selection.base import build_selector

    if cfg.max_queries < 1 or cfg.seeds < 1:
        raise ConfigError("tabular: max_queries and seeds must be >= 1")
    space = SPACES.build(cfg.space, "space", data=DataSpec())
    benchmark = build_benchmark(cfg.benchmark)
    selectors = {label: build_selector(node) for label, node in cfg.selectors.items()}
    result = tabular_search(
        space, benchmark, selectors, search_metric=cfg.search_metric, report_metric=cfg.report_metric,
        max_queries=cfg.max_queries, seeds=cfg.seeds,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "tabular.json").write_text(json.dumps(result, indent=1) + "\n")
    markdown = render_markdown(result)
    (out / "tabular.md").write_text(markdown)
    plot_curves(result, str(out / "tabular.png"))
    return markdown
