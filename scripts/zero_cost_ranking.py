"""Every zero-cost proxy on a whole tabular benchmark: Kendall tau, Spearman, precision@top-5/10 % and tau within
the true top 10 % against the benchmark's accuracies, beside #params and FLOPs.

    python scripts/zero_cost_ranking.py --target nb201          # all NB201 cells (hours on 2 cores; resumable)
    python scripts/zero_cost_ranking.py --target cora           # all 26,206 NAS-Bench-Graph models on Cora
    python scripts/zero_cost_ranking.py --target nb201 --proxies synflow az_nas --stop-after-s 3000   # a slice
    python scripts/zero_cost_ranking.py --target cora --workers 2 --threads 1   # 2 processes of one thread each

Targets:
- ``nb201``: the NB201 network of the benchmark (C=16, N=5, 32x32 input, 10 classes) on real CIFAR-10 training
  images (the NB201 train split), against the 200-epoch test accuracy of CIFAR-10, CIFAR-100 and ImageNet16-120.
  Isomorphic cells are one network: each of the 6,466 isomorphism classes is scored once and its value given to
  every cell of the class, so metrics are over all 15,625 cells.
- ``cora``: the NAS-Bench-Graph space sized as the benchmark's Cora model (hidden 256, one post-layer) on Cora's
  public split, against the benchmark's Cora test and valid accuracy, over its 26,206 distinct models (one arch
  per isomorphism class, as ``nasframe rank ... ranking.canonical=true ranking.num_archs=0``).

Each proxy runs with its paper's settings (initialisation, BatchNorm mode, input, batch size; recorded per row),
seed 0 for weights and batches. Classes are scored in a seeded random order, one class by every proxy before the
next, so a stopped run has scored the same uniform sample of classes with every proxy; rows say how many archs
they cover (``complete`` false until all are). Values are kept in ``<out>/values_<proxy>.jsonl`` as they come
(the evaluators' caches, not committed) and, at the end of each run, in ``values_<proxy>.jsonl.gz`` (the committed
snapshot: a whole NAS-Bench-Graph column is 5 MB plain, a fifth of that gzipped); the same command continues, from
the snapshot where a checkout has no cache. Combinations (AZ-NAS's log-rank sum) are computed over the archs every
component has scored. Settings are chosen on the first truth (CIFAR-10, Cora test); the others are a check, never tuned on.
With ``--workers N`` the classes are scored in N forked processes of ``--threads`` threads each (CPU only), in the
same order: the main process takes their values in that order and writes the caches, so a stopped run has scored
a prefix of the order, as a run in one process has.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasframe.benchmarks.nb201 import NB201Benchmark
from nasframe.core.space import DataSpec
from nasframe.data.base import build_dataset
from nasframe.evaluation.ranking import random_ranking_expectation, ranking_metrics, sample_archs
from nasframe.evaluation.zero_cost import PROXIES, ZeroCostConfig, ZeroCostEvaluator
from nasframe.evaluation.zero_cost.combine import combine_population
from nasframe.evaluation.zero_cost.workers import score_in_workers
from nasframe.hardware import describe_device
from nasframe.markdown import markdown_table
from search_spaces.nb201 import NB201Space

TRUTHS = ("cifar10_test", "cifar100_test", "imagenet16_120_test")  # NB201's (also read by zero_cost_combination.py)
#: Kendall tau on all 15,625 cells against CIFAR-10 test accuracy, as published (VKDNW, CVPR 2025, Table 1 re-run,
#: and AZ-NAS's official notebook), for the rows that have one
PUBLISHED_TAU = {"params": 0.578, "flops": 0.623, "synflow": 0.561, "jacov": 0.616, "naswot": 0.571, "zico": 0.607,
                 "az_nas": 0.741}
#: variants of a proxy with other settings than its paper's: name -> (proxy, settings overrides). Synflow with the
#: BatchNorm statistics of one batch of 16 real training images (then eval mode) instead of the initial ones
VARIANTS = {"synflow_bn_calibrated": ("synflow", {"bn": "calibrated", "input": "real", "batch_size": 16})}
#: combinations reported besides single components: name -> components (log-rank sum, AZ-NAS)
COMBINATIONS = {"az_nas": ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")}


@dataclass
class Target:
    """What is ranked: the space, the archs (one per row of the metrics), their truths, the data the proxies read."""

    name: str
    space: Any
    archs: list  # every arch the metrics are over
    truths: dict[str, np.ndarray]  # metric -> true value of each arch
    data: Any
    build_network: Callable[[Any], Any]


def nb201_target(device: torch.device) -> Target:
    benchmark = NB201Benchmark()
    space = NB201Space(DataSpec(3, (32, 32), 10), channels=16, cells_per_stage=5)
    cells = list(space.enumerate())
    natives = [space.format(a) for a in cells]
    truths = {t: np.array([benchmark.metric(n, t) for n in natives]) for t in TRUTHS}
    data = build_dataset({"name": "cifar10", "augment": False})
    return Target("nb201", space, cells, truths, data, lambda arch: space.build_subnet(arch).to(device))


def cora_target(device: torch.device) -> Target:
    from nasframe.benchmarks.nasbench_graph import NASBenchGraph
    from nasframe.core.graph import bind_graph
    from nasframe.core.registry import SPACES

    data = build_dataset({"name": "planetoid", "graph": "Cora"})
    space = SPACES.get("gnn_bench")(data.spec, hidden=256, pre_layers=0, post_layers=1, dropout=0.7)
    benchmark = NASBenchGraph(dataset="cora")
    models = sample_archs(space, 0, 0, canonical=True)
    natives = [space.format(a) for a in models]
    truths = {t: np.array([benchmark.metric(n, t) for n in natives]) for t in ("cora_test", "cora_valid")}
    graph = data.graph.to(device)

    def build(arch):
        return bind_graph(space.build_subnet(arch).to(device), graph.x, graph.edge_index)

    return Target("cora", space, models, truths, data, build)


TARGETS = {"nb201": nb201_target, "cora": cora_target}
#: proxies left out of a target's default list, with the reason (name them with --proxies to run them anyway)
LEFT_OUT = {"cora": {"gradsign": "per-example gradients of a GNN need one full-graph backward pass per training "
                                 "node: 84 s per model on 2 cores, 25 days for the space"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=sorted(TARGETS), default="nb201")
    parser.add_argument("--proxies", nargs="*", default=None, help="default: every registered proxy for the target")
    parser.add_argument("--variants", nargs="*", default=None, help=f"of {', '.join(VARIANTS)} (default: all, nb201)")
    parser.add_argument("--stop-after-s", type=float, default=0.0, help="stop scoring after this many seconds")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each scoring process")
    parser.add_argument("--workers", type=int, default=1, help="scoring processes (CPU; 1: in this process)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda: where the networks are scored")
    parser.add_argument("--out", type=Path, default=None, help="default: results/zero_cost_<target>")
    parser.add_argument("--report-only", action="store_true", help="write the report from the values kept")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.workers > 1 and args.device != "cpu":
        parser.error("--workers > 1 scores on the CPU only (forked processes); on a GPU use one")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    target = TARGETS[args.target](device)
    out = args.out or Path(f"results/zero_cost_{target.name}")
    graphs = target.space.takes_graphs
    left_out = LEFT_OUT.get(target.name, {})
    proxies = args.proxies or [n for n in PROXIES.names() if n not in left_out
                               and (PROXIES.get(n).supports_graphs if graphs else PROXIES.get(n).supports_images)]
    for name, why in left_out.items():
        if name not in proxies:
            logging.info("%s left out: %s", name, why)
    variants = args.variants if args.variants is not None else ([] if graphs else list(VARIANTS))
    jobs = {**{name: (name, {}) for name in proxies}, **{name: VARIANTS[name] for name in variants}}
    for name in jobs:
        continue_from_snapshot(out / f"values_{name}.jsonl")
    evaluators = build_evaluators(target, jobs, device, out)
    classes = list(dict.fromkeys(target.space.canonical(a) for a in target.archs))
    order = [classes[i] for i in np.random.default_rng(0).permutation(len(classes))]

    if not args.report_only:
        for name, evaluator in evaluators.items():
            logging.info("%s: %d of %d classes scored", name, len(evaluator.values), len(order))
        # class by class (one class by every proxy before the next): a stop leaves the same prefix of the order
        score_in_workers(evaluators, order, lambda: build_evaluators(target, jobs, torch.device("cpu"), None),
                         args.workers, args.threads, args.stop_after_s)
    for name in jobs:
        write_snapshot(out / f"values_{name}.jsonl")
    where = ("the report only, from the values kept (each slice's machine and processes: its commit message)"
             if args.report_only else describe_device(device) if device.type != "cpu"
             else f"{args.threads} threads" if args.workers == 1
             else f"{args.workers} processes of {args.threads} thread{'s' * (args.threads > 1)}")
    write_report(out, target, evaluators, where)


def build_evaluators(target: Target, jobs: dict, device: torch.device, out: Path | None) -> dict:
    """One evaluator per job (proxy or variant), with its cache file in ``out`` (none: in memory only)."""
    return {name: ZeroCostEvaluator(target.space, target.build_network, ZeroCostConfig(
        proxy=proxy, cache_file=str(out / f"values_{name}.jsonl") if out else None, **overrides),
        train=target.data.train, prepare=target.data.prepare, device=device) for name, (proxy, overrides) in jobs.items()}


def continue_from_snapshot(cache: Path) -> None:
    """Where a checkout holds only the committed snapshot ``<cache>.gz``, unpack it as the cache to continue."""
    snapshot = cache.with_name(cache.name + ".gz")
    if not cache.is_file() and snapshot.is_file():
        cache.write_bytes(gzip.decompress(snapshot.read_bytes()))


def write_snapshot(cache: Path) -> None:
    """The cache as committed, ``<cache>.gz``: the same bytes for the same values (no timestamp in the header)."""
    if cache.is_file():
        cache.with_name(cache.name + ".gz").write_bytes(gzip.compress(cache.read_bytes(), compresslevel=9, mtime=0))


def load_values(folder: Path, space) -> dict[str, dict]:
    """Component (or variant) -> {canonical class: value} from the values files kept in ``folder``
    (``values_<proxy or variant>.jsonl`` as this script writes them, or one evaluator's ``values.jsonl``; a file
    kept only gzipped, ``.jsonl.gz``, is read from that)."""
    values: dict[str, dict] = {}
    for label, rows in values_files(folder).items():
        for row in rows:
            cls = space.canonical(space.parse(row["arch"]))
            for component, value in row["values"].items():
                values.setdefault(label if label in VARIANTS else component, {})[cls] = float(value)
    return values


def values_files(folder: Path, pattern: str = "values*") -> dict[str, list[dict]]:
    """Label (``values_<label>``) -> the rows of each values file in ``folder``: the plain cache where there is one,
    else its gzipped snapshot; a line cut short by a stopped run is skipped."""
    plain = sorted(folder.glob(f"{pattern}.jsonl"))
    packed = [p for p in sorted(folder.glob(f"{pattern}.jsonl.gz")) if p.with_suffix("") not in plain]
    files = {}
    for path in plain + packed:
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
        rows = []
        for line in text.splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        files[path.name.split(".")[0].removeprefix("values_")] = rows
    return files


def write_report(out: Path, target: Target, evaluators: dict, machine: str) -> None:
    space, cells, truths = target.space, target.archs, target.truths
    first = next(iter(truths))
    canonical = [space.canonical(a) for a in cells]
    values: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    settings: dict[str, dict] = {}
    owners: dict[str, str] = {}
    for name, evaluator in evaluators.items():
        for component in evaluator.components:
            label = name if name in VARIANTS else component
            values[label] = {c: v[component] for c, v in evaluator.values.items()}
            owners[label] = name
        # the median: slices ran beside other work, and a stall that held both scoring scripts left single classes at
        # thousands of seconds, which a mean would spread over all
        seconds[name] = float(np.median(list(evaluator.seconds.values()))) if evaluator.seconds else float("nan")
        settings[name] = {p: d["settings"] for p, d in evaluator.describe()["proxies"].items()}
    rows = []

    def add_row(method: str, proxy: str, per_class: dict) -> None:
        keep = [i for i, c in enumerate(canonical) if c in per_class]
        if len(keep) < 2:
            return
        scores = np.array([per_class[canonical[i]] for i in keep])
        row = {"method": method, "proxy": proxy, "seed": 0, "num_archs": len(keep),
               "num_classes_scored": len({canonical[i] for i in keep}), "complete": len(keep) == len(cells),
               "median_seconds_per_class": seconds.get(proxy), "settings": settings.get(proxy),
               "published_kendall_tau": PUBLISHED_TAU.get(method) if target.name == "nb201" else None}
        for truth, t in truths.items():
            metrics = ranking_metrics(scores, t[keep])
            row[truth] = metrics
            if truth == first:
                row.update({k: metrics[k] for k in ("kendall_tau", "spearman")})
        rows.append(row)

    for label, per_class in values.items():
        add_row(label, owners[label], per_class)
    for combination, components in COMBINATIONS.items():
        if all(c in values for c in components):
            shared = set.intersection(*(set(values[c]) for c in components))
            members = sorted(shared, key=space.format)
            combined = combine_population([{c: values[c][m] for c in components} for m in members], components)
            add_row(combination, combination, dict(zip(members, combined)))
    random_row = {"method": "random (expected)", "num_archs": len(cells), "complete": True,
                  **{t: random_ranking_expectation(v) for t, v in truths.items()}}
    report = {
        "protocol": {
            "target": target.name, "space": space.describe(), "cells": len(cells),
            "isomorphism_classes": len(set(canonical)), "truths": list(truths),
            "truth": ("NAS-Bench-201 200-epoch test accuracy (mean over seeds), ../shared/data/nb201/accuracy.csv"
                      if target.name == "nb201" else "NAS-Bench-Graph (nas-bench-graph package) Cora test and valid accuracy"),
            "data": f"{target.data.summary()}; training examples, seed 0",
            "command": "python " + " ".join(sys.argv),
            "scored_by": f"python scripts/zero_cost_ranking.py --target {target.name}, in time slices (--stop-after-s); "
                         "values_*.jsonl.gz (the committed snapshots of the caches) hold each class's values and "
                         "seconds; median s / class: the median wall-clock seconds of one class, every proxy's own "
                         "network build and initialisation included",
            "machine": f"{platform.processor() or platform.machine()}, {machine}", "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d"),
        },
        "rows": rows + [random_row],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"zero_cost_{target.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"zero_cost_{target.name}.md").write_text(markdown(report))


def markdown(report: dict) -> str:
    p = report["protocol"]
    title = {"nb201": "NAS-Bench-201", "cora": "NAS-Bench-Graph, Cora"}[p["target"]]
    lines = [f"# Zero-cost proxies on {title}", "",
             f"- {p['cells']:,} archs ({p['isomorphism_classes']:,} isomorphism classes, each scored once); truth: {p['truth']}",
             f"- space {json.dumps(p['space']['config'])}; data: {p['data']}",
             f"- `{p['command']}` on {p['machine']}, torch {p['torch']}, {p['date']}; scored by {p.get('scored_by', '-')}", ""]
    lines.append(metrics_table(report["rows"], p["truths"], seconds=True))
    return "\n".join(lines) + "\n"


def metrics_table(rows: list[dict], truths: list[str], seconds: bool) -> str:
    """Rows sorted by Kendall tau against the first truth: archs scored, tau beside the published one, Spearman,
    precision@top-5/10 %, tau in the true top 10 %, tau against the other truths (and the median wall-clock seconds
    that scoring one isomorphism class took)."""
    first, others = truths[0], truths[1:]
    table = []
    for r in sorted(rows, key=lambda r: -r[first]["kendall_tau"]):
        m = r[first]
        spent = r.get("median_seconds_per_class")
        table.append([r["method"], f"{r['num_archs']:,}{'' if r['complete'] else ' (partial)'}", m["kendall_tau"],
                      r.get("published_kendall_tau"), m["spearman"], m["precision_at_top_5pct"],
                      m["precision_at_top_10pct"], m["kendall_tau_true_top_10pct"],
                      *(r[t]["kendall_tau"] for t in others), *([f"{spent:.3f}" if spent else None] if seconds else [])])
    fmt = ".3f"
    return markdown_table(
        ["method", "archs scored", f"{first} tau", "published tau", "Spearman", "P@5%", "P@10%", "tau in top 10%",
         *(f"{t} tau" for t in others), *(["median s / class"] if seconds else [])],
        table, "l" + "r" * (7 + len(others) + seconds),
        formats=[None, None, fmt, None, fmt, fmt, fmt, fmt, *(fmt for _ in others), *([None] if seconds else [])])


if __name__ == "__main__":
    main()
