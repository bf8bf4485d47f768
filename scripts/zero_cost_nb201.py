"""Every zero-cost proxy on NAS-Bench-201: Kendall tau, Spearman, precision@top-5/10 % and tau within the true top
10 % against the 200-epoch test accuracy of CIFAR-10, CIFAR-100 and ImageNet16-120, beside #params and FLOPs.

    python scripts/zero_cost_nb201.py                                   # every proxy, every cell (hours on 2 cores)
    python scripts/zero_cost_nb201.py --proxies synflow az_nas --stop-after-s 3000   # a time slice; rerun continues

Protocol: the NB201 network of the benchmark (C=16, N=5, 32x32 input, 10 classes); each proxy with its paper's
settings (initialisation, BatchNorm mode, input, batch size; recorded per row), seed 0 for weights and batches,
real CIFAR-10 training images (the NB201 train split) where a proxy reads data. Isomorphic cells are one network:
each of the 6,466 isomorphism classes is scored once and its value given to every cell of the class, so metrics
are over all 15,625 cells. Classes are scored in a seeded random order, so a stopped run has scored a uniform
sample of classes; its rows say how many cells they cover (``complete`` false until all are scored). Values are
kept in ``<out>/values_<proxy>.jsonl`` as they come; the same command continues. Combinations (AZ-NAS's log-rank
sum) are computed over the cells every component has scored. Settings were chosen on CIFAR-10 alone; the
CIFAR-100 and ImageNet16-120 columns are a check, never tuned on.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nasframe.benchmarks.nb201 import NB201Benchmark
from nasframe.core.space import DataSpec
from nasframe.data.base import build_dataset
from nasframe.evaluation.ranking import random_ranking_expectation, ranking_metrics
from nasframe.evaluation.zero_cost import PROXIES, ZeroCostConfig, ZeroCostEvaluator
from nasframe.evaluation.zero_cost.combine import combine_population
from search_spaces.nb201 import NB201Space

TRUTHS = ("cifar10_test", "cifar100_test", "imagenet16_120_test")
#: Kendall tau on all 15,625 cells against CIFAR-10 test accuracy, as published (VKDNW, CVPR 2025, Table 1 re-run,
#: and AZ-NAS's official notebook), for the rows that have one
PUBLISHED_TAU = {"params": 0.578, "flops": 0.623, "synflow": 0.561, "jacov": 0.616, "naswot": 0.571, "zico": 0.607,
                 "az_nas": 0.741}
#: variants of a proxy with other settings than its paper's: name -> (proxy, settings overrides). Synflow with the
#: BatchNorm statistics of one batch of 16 real training images (then eval mode) instead of the initial ones
VARIANTS = {"synflow_bn_calibrated": ("synflow", {"bn": "calibrated", "input": "real", "batch_size": 16})}
#: combinations reported besides single components: name -> components (log-rank sum, AZ-NAS)
COMBINATIONS = {"az_nas": ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxies", nargs="*", default=None, help="default: every registered image proxy")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--stop-after-s", type=float, default=0.0, help="stop scoring after this many seconds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/zero_cost_nb201"))
    parser.add_argument("--report-only", action="store_true", help="write the report from the values kept")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    torch.set_num_threads(args.threads)
    proxies = args.proxies or [n for n in PROXIES.names() if PROXIES.get(n).supports_images]

    benchmark = NB201Benchmark()
    space = NB201Space(DataSpec(3, (32, 32), 10), channels=16, cells_per_stage=5)
    cells = list(space.enumerate())
    classes = list(dict.fromkeys(space.canonical(a) for a in cells))
    order = [classes[i] for i in np.random.default_rng(0).permutation(len(classes))]
    data = build_dataset({"name": "cifar10", "augment": False})
    jobs = {**{name: (name, {}) for name in proxies}, **{name: VARIANTS[name] for name in args.variants}}
    evaluators = {name: ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(
        proxy=proxy, cache_file=str(args.out / f"values_{name}.jsonl"), **overrides),
        train=data.train, prepare=data.prepare) for name, (proxy, overrides) in jobs.items()}

    started = time.perf_counter()
    if not args.report_only:
        for name, evaluator in evaluators.items():
            logging.info("%s: %d of %d classes scored", name, len(evaluator.values), len(order))
        for done, cls in enumerate(order):  # class by class: every proxy covers the same uniform sample
            if args.stop_after_s and time.perf_counter() - started > args.stop_after_s:
                logging.info("stopped after %.0f s at class %d; the same command continues", args.stop_after_s, done)
                break
            for evaluator in evaluators.values():
                evaluator.component_values(cls)
    write_report(args.out, space, cells, evaluators, benchmark, data.name, args.threads)


def load_values(folder: Path, space) -> dict[str, dict]:
    """Component (or variant) -> {canonical class: value} from the values files kept in ``folder``."""
    values: dict[str, dict] = {}
    for path in sorted(folder.glob("values_*.jsonl")):
        label = path.stem.removeprefix("values_")
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            cls = space.canonical(space.parse(row["arch"]))
            for component, value in row["values"].items():
                values.setdefault(label if label in VARIANTS else component, {})[cls] = float(value)
    return values


def write_report(out: Path, space, cells, evaluators, benchmark, data_name: str, threads: int) -> None:
    canonical = [space.canonical(a) for a in cells]
    natives = [space.format(a) for a in cells]
    truths = {t: np.array([benchmark.metric(n, t) for n in natives]) for t in TRUTHS}
    values: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    settings: dict[str, dict] = {}
    owners: dict[str, str] = {}
    for name, evaluator in evaluators.items():
        for component in evaluator.components:
            label = name if name in VARIANTS else component
            values[label] = {c: v[component] for c, v in evaluator.values.items()}
            owners[label] = name
        seconds[name] = float(np.mean(list(evaluator.seconds.values()))) if evaluator.seconds else float("nan")
        settings[name] = {p: d["settings"] for p, d in evaluator.describe()["proxies"].items()}
    rows = []

    def add_row(method: str, proxy: str, per_class: dict) -> None:
        keep = [i for i, c in enumerate(canonical) if c in per_class]
        if len(keep) < 2:
            return
        scores = np.array([per_class[canonical[i]] for i in keep])
        row = {"method": method, "proxy": proxy, "seed": 0, "num_archs": len(keep),
               "num_classes_scored": len({canonical[i] for i in keep}), "complete": len(keep) == len(cells),
               "seconds_per_arch": seconds.get(proxy), "settings": settings.get(proxy),
               "published_kendall_tau": PUBLISHED_TAU.get(method)}
        for truth, t in truths.items():
            metrics = ranking_metrics(scores, t[keep])
            row[truth] = metrics
            if truth == "cifar10_test":
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
            "space": space.describe(), "cells": len(cells), "isomorphism_classes": len(set(canonical)),
            "truth": "NAS-Bench-201 200-epoch test accuracy (mean over seeds), ../shared/data/nb201/accuracy.csv",
            "data": f"{data_name} training images (NB201 train split), seed 0",
            "command": "python " + " ".join(sys.argv),
            "machine": f"{platform.processor() or platform.machine()}, {threads} threads", "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d"),
        },
        "rows": rows + [random_row],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "zero_cost_nb201.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "zero_cost_nb201.md").write_text(markdown(report))


def markdown(report: dict) -> str:
    p = report["protocol"]
    lines = ["# Zero-cost proxies on NAS-Bench-201", "",
             f"- {p['cells']} cells ({p['isomorphism_classes']} isomorphism classes, each scored once); truth: {p['truth']}",
             f"- space {json.dumps(p['space']['config'])}, input {p['space']['data']['input_size']}; data: {p['data']}",
             f"- `{p['command']}` on {p['machine']}, torch {p['torch']}, {p['date']}", "",
             "| method | cells scored | C-10 tau | published tau | Spearman | P@5% | P@10% | tau in top 10% | "
             "C-100 tau | IN16 tau | s / arch |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in sorted(report["rows"], key=lambda r: -r["cifar10_test"]["kendall_tau"]):
        c10 = r["cifar10_test"]
        published = r.get("published_kendall_tau")
        spent = r.get("seconds_per_arch")
        lines.append(
            f"| {r['method']} | {r['num_archs']:,}{'' if r['complete'] else ' (partial)'} | {c10['kendall_tau']:.3f} | "
            f"{published if published is not None else '-'} | {c10['spearman']:.3f} | "
            f"{c10['precision_at_top_5pct']:.3f} | {c10['precision_at_top_10pct']:.3f} | "
            f"{c10['kendall_tau_true_top_10pct']:.3f} | {r['cifar100_test']['kendall_tau']:.3f} | "
            f"{r['imagenet16_120_test']['kendall_tau']:.3f} | {f'{spent:.3f}' if spent else '-'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
