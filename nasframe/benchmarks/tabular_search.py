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

A selector that reads zero-cost proxies (``selector=predictor_guided``) gets them computed on ``dataset`` (one
evaluator per setting, shared by the seeds), and the report gives what they cost: the archs they scored per run
and the CPU seconds those values took. ``also_report`` metrics (e.g. the other data sets' columns of NAS-Bench-201)
are reported for each seed's final pick and the largest arch: the check of a pick that nothing searched on.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasframe.benchmarks.base import TabularBenchmark
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError, InvalidArchError
from nasframe.markdown import markdown_table
from nasframe.selection.base import Evaluation, Selector, SelectorInputs
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
                          report_metric: str, also_report: Sequence[str] = ()) -> dict[str, Any]:
    """The largest arch of the space (most parameters) and its benchmark values: the no-search baseline.

    Its metrics are None, with a note, when the benchmark holds no entry for it."""
    largest = find_largest(space)
    native = space.format(largest.arch)
    record: dict[str, Any] = {"arch": native, "params": largest.params, "found_by": largest.method,
                              "exact": largest.exact, "search_metric": None, "report_metric": None}
    try:
        record["search_metric"] = benchmark.metric(native, search_metric)
        record["report_metric"] = benchmark.metric(native, report_metric)
        record["also_report"] = {m: benchmark.metric(native, m) for m in also_report}
    except InvalidArchError as error:
        record["note"] = str(error)
    return record


class RecordingProxies:
    """Hands a selector the zero-cost values of ``proxies`` and records which archs it asked for, so that a run's
    proxy cost is the sum of the seconds the evaluator measured computing them (also when read from its cache)."""

    def __init__(self, proxies: Any) -> None:
        self.proxies, self.asked = proxies, set()
        self.components = list(proxies.components)

    def component_values(self, arch):
        values = self.proxies.component_values(arch)
        self.asked.add(self.proxies.key(arch))
        return values

    def cpu_seconds(self) -> float:
        return self.proxies.seconds_for(self.asked)


def tabular_search(
    space: SearchSpace,
    benchmark: TabularBenchmark,
    selectors: Mapping[str, Selector],
    *,
    search_metric: str,
    report_metric: str,
    max_queries: int,
    seeds: int,
    also_report: Sequence[str] = (),
    proxies: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every selector once per seed against the benchmark; the curves, the optimum and the baselines
    (the largest arch's values, the labels of the random-search selectors) as a JSON-ready dict. ``also_report``:
    metrics given for each seed's final pick besides ``report_metric`` (checks nothing searched on); ``proxies``:
    label -> the zero-cost evaluator of a selector that reads proxies (:meth:`Selector.proxy_config`)."""
    benchmark.check_metric(search_metric)
    benchmark.check_metric(report_metric)
    for metric in also_report:
        benchmark.check_metric(metric)
    proxies = proxies or {}

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
            "also_report": list(also_report),
        },
        "optimum": max(benchmark.metric(n, report_metric) for n in benchmark.archs()),
        "baselines": {
            "largest_arch": largest_arch_baseline(space, benchmark, search_metric, report_metric, also_report),
            "random_search": [label for label, s in selectors.items() if isinstance(s, RandomSearch)],
        },
        "selectors": {},
        "rows": [],  # one per selector and seed: method, seed, num_archs, found_true (as every results/ row)
    }
    for label, selector in selectors.items():
        curves, picks, proxy_runs = [], [], []
        for seed in range(seeds):
            recorder = RecordingProxies(proxies[label]) if label in proxies else None
            result = selector.select(space, search_value, seed=seed, max_queries=max_queries,
                                     inputs=SelectorInputs(proxies=recorder))
            curves.append(incumbent_curve(result.history, report_value, max_queries))
            picks.append(space.format(result.arch))
            out["rows"].append({"method": label, "seed": seed, "num_archs": len(result.history),
                                "found_true": report_value(result.arch),
                                **{m: benchmark.metric(picks[-1], m) for m in also_report}})
            if recorder is not None:
                proxy_runs.append({"archs": len(recorder.asked), "cpu_seconds": recorder.cpu_seconds()})
        array = np.asarray(curves, dtype=float)
        out["selectors"][label] = {
            "settings": {"name": label, **vars(selector.config)},
            "mean": array.mean(axis=0).tolist(),
            "std": array.std(axis=0).tolist(),
            "final_per_seed": array[:, -1].tolist(),
            "picks": picks,
            "also_report": {m: [r[m] for r in out["rows"] if r["method"] == label] for m in also_report},
            **({"proxies": {"components": list(proxies[label].components), "runs": proxy_runs}}
               if label in proxies else {}),
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
    run = p.get("run")
    if run:
        lines += [f"`{run['command']}` on {run['machine']}, {run['threads']} threads, torch {run['torch']}, "
                        f"{run['date']}", ""]
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
    lines += _picks_section(result)
    lines.append("")
    return "\n".join(lines)


def _picks_section(result: dict[str, Any]) -> list[str]:
    """Each selector's final picks on the further metrics (``also_report``) and the cost of the proxies it read."""
    p, selectors = result["protocol"], result["selectors"]
    also = p.get("also_report") or []
    with_proxies = any("proxies" in r for r in selectors.values())
    if not also and not with_proxies:
        return []
    header = ["selector", f"{p['report_metric']} of the pick", *(f"{m} of the pick" for m in also)]
    if with_proxies:
        header += ["archs the proxies scored, per run", "proxy CPU s per run"]
    rows = []
    for label, r in selectors.items():
        row = [_baseline_label(result, label), _mean_std(r["final_per_seed"]),
               *(_mean_std(r["also_report"][m]) for m in also)]
        if with_proxies:
            runs = r.get("proxies", {}).get("runs", [])
            row += [_mean_std([x["archs"] for x in runs], 0) if runs else "-",
                    _mean_std([x["cpu_seconds"] for x in runs], 0) if runs else "-"]
        rows.append(row)
    largest = _largest(result)
    if largest is not None and also:
        rows.append(["largest arch (baseline, no queries)", f"{largest['report_metric']:.2f}",
                     *(f"{largest['also_report'][m]:.2f}" if m in largest.get("also_report", {}) else "-"
                       for m in also), *(["-", "-"] if with_proxies else [])])
    features = {label: r["proxies"]["components"] for label, r in selectors.items() if "proxies" in r}
    held_out = [m for m in also if m != p["search_metric"]]
    said = [*([f"{', '.join(held_out)} never searched on"] if held_out else []),
            *([f"{p['search_metric']} is the metric searched on"] if p["search_metric"] in also else [])]
    return ["", f"After {p['max_queries']} queries (mean ± std over seeds; " + ("; ".join(said) or "no further metric")
            + "):", "",
            markdown_table(header, rows, "l" + "r" * (len(header) - 1)),
            *([""] + [f"- {label} reads the zero-cost proxies {', '.join(c)}; their CPU seconds are the ones measured "
                      "when each value was computed (a cached value costs its first computation)"
                      for label, c in features.items()] if features else [])]


def _mean_std(values: Sequence[float], digits: int = 2) -> str:
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


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
    benchmark = build_benchmark(cfg.benchmark)
    selectors = {label: build_selector(node) for label, node in cfg.selectors.items()}
    wants = {}
    for label, selector in selectors.items():
        settings = selector.proxy_config()
        if settings is not None:
            wants[label] = settings
    data = None
    if wants and cfg.get("dataset") is None:
        raise ConfigError(f"tabular: selector {next(iter(wants))!r} reads zero-cost proxies of the untrained "
                          "networks: give the data set they are computed on (dataset=cifar10), or set its "
                          "proxy to [] (selectors.<label>.proxy=[])")
    if cfg.get("dataset") is None and getattr(SPACES.get(cfg.space.name), "takes_graphs", False):
        raise ConfigError(f"tabular: space {cfg.space.name}'s networks are as wide as the graph's node features, "
                          "so its parameter counts (the largest-arch baseline) need the data set: give it "
                          "(dataset=planetoid)")
    if cfg.get("dataset") is not None:  # its spec sizes the networks: the largest arch is counted on it
        from nasframe.data.base import build_dataset

        if cfg.get("threads"):
            torch.set_num_threads(cfg.threads)
        data = build_dataset(cfg.dataset)
    space = SPACES.build(cfg.space, "space", data=data.spec if data is not None else DataSpec())
    proxies = {}
    if wants:
        from nasframe.search import zero_cost_evaluator

        built: dict[str, Any] = {}  # one evaluator per distinct setting, shared by the selectors and the seeds
        for label, settings in wants.items():
            key = repr(settings)
            if key not in built:  # errors in the settings name the first selector that has them
                built[key] = zero_cost_evaluator(space, data, settings, torch.device("cpu"), f"selectors.{label}")
            proxies[label] = built[key]
    result = tabular_search(
        space, benchmark, selectors, search_metric=cfg.search_metric, report_metric=cfg.report_metric,
        max_queries=cfg.max_queries, seeds=cfg.seeds, also_report=list(cfg.get("also_report") or []),
        proxies=proxies,
    )
    result["protocol"]["run"] = {"command": "nasframe tabular " + shlex.join(sys.argv[1:]),
                                 "machine": platform.machine(), "torch": torch.__version__,
                                 "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}
    out.mkdir(parents=True, exist_ok=True)
    (out / "tabular.json").write_text(json.dumps(result, indent=1) + "\n")
    markdown = render_markdown(result)
    (out / "tabular.md").write_text(markdown)
    plot_curves(result, str(out / "tabular.png"))
    return markdown
