"""A training-free evaluator preset on a whole tabular benchmark, timed: every NB201 cell in worker processes.

    python scripts/zero_cost_assembly.py                         # configs/evaluator/zero_cost_assembly.yaml, 2 workers
    python scripts/zero_cost_assembly.py --limit 50 --out /tmp/a # a toy run: the first 50 classes of the order

The evaluator is built from an evaluator config file exactly as ``nasframe rank evaluator=<name>`` builds it (the
default is the ``zero_cost_assembly`` preset), and scores every isomorphism class of the target's space once, in a
seeded random order, in ``--workers`` processes of one torch thread each (the main process only hands out classes
and writes the values as they come, so a stopped run continues where it stopped). Each class's value goes to every
cell of the class; the combination (the preset's log-rank sum) ranks among all scored classes. The values are kept
in ``<out>/values.jsonl`` (the evaluator's cache, not committed) and, at the end of each run, in ``values.jsonl.gz``
(committed), from which a fresh checkout continues.

The report (``<out>/zero_cost_assembly.{json,md}``) gives, against CIFAR-10 test accuracy (the metric the preset
was chosen on) and CIFAR-100 / ImageNet16-120 (never chosen on): Kendall tau, Spearman, precision@top-5/10 %, tau in
the true top 10 %, for the combination, each of its components alone, AZ-NAS's own assembly of the same values
(its three data components and #params, which orders NB201 cells as its FLOPs complexity does) and a random ranking;
and the time: wall-clock of the scoring, the CPU time of the workers (user + system) and the sum of the per-class
seconds, per slice of a resumed run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from nasframe.evaluation.ranking import random_ranking_expectation, ranking_metrics
from nasframe.evaluation.zero_cost import ZeroCostConfig, ZeroCostEvaluator
from nasframe.evaluation.zero_cost.combine import combine_population
from nasframe.evaluation.zero_cost.workers import score_in_workers
from nasframe.markdown import markdown_table
from nasframe.search import evaluator_settings

from zero_cost_ranking import (PUBLISHED_TAU, TARGETS, continue_from_snapshot, load_values,  # scripts/ is on the path
                               metrics_table, write_snapshot)

PRESET = Path("configs/evaluator/zero_cost_assembly.yaml")
AZ_NAS_DATA = ("az_expressivity", "az_progressivity", "az_trainability")
#: the label of a component in zero_cost_ranking.py's values at its papers' settings, where it differs (the synflow
#: variant with the preset's own settings: BatchNorm calibrated on 16 real images)
PAPER_LABELS = {"synflow": "synflow_bn_calibrated"}

def load_settings(path: Path) -> ZeroCostConfig:
    """The checked settings of a zero-cost evaluator config file (its Hydra ``defaults`` list dropped)."""
    if not path.is_file():
        raise SystemExit(f"--evaluator: no such file {path}")
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    for entry in node.pop("defaults", None) or []:  # "/evaluator_<name>_schema" names the evaluator
        if isinstance(entry, str) and entry.startswith("/evaluator_") and entry.endswith("_schema"):
            node.setdefault("name", entry[len("/evaluator_"):-len("_schema")])
    settings = evaluator_settings(node)
    if not isinstance(settings, ZeroCostConfig):
        raise SystemExit(f"--evaluator: {path} is a {settings.name} evaluator; this script times zero_cost ones")
    return settings


def build_evaluator(target, settings: ZeroCostConfig, cache_file: str | None = None) -> ZeroCostEvaluator:
    config = dataclasses.replace(settings, cache_file=cache_file)
    return ZeroCostEvaluator(target.space, target.build_network, config, train=target.data.train,
                             prepare=target.data.prepare, device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=["nb201"], default="nb201")
    parser.add_argument("--evaluator", type=Path, default=PRESET, help="an evaluator config file (configs/evaluator/)")
    parser.add_argument("--workers", type=int, default=2, help="processes, one torch thread each")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N classes of the order (toy runs)")
    parser.add_argument("--stop-after-s", type=float, default=0.0, help="stop handing out classes after this long")
    parser.add_argument("--out", type=Path, default=None, help="default: results/zero_cost_assembly_<target>")
    parser.add_argument("--paper-values", type=Path, default=None,
                        help="zero_cost_ranking.py's values at the papers' settings, compared on the classes both "
                             "scored (default: results/zero_cost_<target> where it exists)")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    torch.set_num_threads(1)
    out = args.out or Path(f"results/zero_cost_assembly_{args.target}")
    out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(args.evaluator)
    target = TARGETS[args.target](torch.device("cpu"))
    cache = out / "values.jsonl"
    continue_from_snapshot(cache)  # a checkout keeps only the snapshot: continue from it
    evaluator = build_evaluator(target, settings, str(cache))
    space = target.space
    classes = list(dict.fromkeys(space.canonical(a) for a in target.archs))
    order = [classes[i] for i in np.random.default_rng(0).permutation(len(classes))]
    if args.limit:
        order = order[:args.limit]

    timing_path = out / "timing.json"
    slices = json.loads(timing_path.read_text()) if timing_path.is_file() else []
    if any(c not in evaluator.values for c in order):
        began, cpu_before = time.perf_counter(), _children_cpu()
        scored = score_in_workers({"assembly": evaluator}, order, lambda: {"assembly": build_evaluator(target, settings)},
                                  args.workers, stop_after_s=args.stop_after_s, log_every=250)
        slices.append({"classes": scored, "workers": args.workers, "wall_s": time.perf_counter() - began,
                       "worker_cpu_s": _children_cpu() - cpu_before, "date": time.strftime("%Y-%m-%d %H:%M"),
                       "command": "python " + " ".join(sys.argv)})
        timing_path.write_text(json.dumps(slices, indent=1) + "\n")
    write_snapshot(cache)  # the values as committed: gzipped (a fifth of the size)
    paper = args.paper_values or Path(f"results/zero_cost_{args.target}")
    write_report(out, target, evaluator, order, slices, args, load_values(paper, space) if paper.is_dir() else {})


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def write_report(out: Path, target, evaluator: ZeroCostEvaluator, order: list, slices: list, args,
                 paper_values: dict) -> None:
    """``paper_values``: component label -> {class: value} at the papers' settings (may be empty)."""
    space = target.space
    canonical = [space.canonical(a) for a in target.archs]
    scored = [c for c in dict.fromkeys(canonical) if c in evaluator.values]
    keep = [i for i, c in enumerate(canonical) if c in evaluator.values]
    if len(keep) < 2:
        raise SystemExit("fewer than 2 archs scored: nothing to report")
    truths = {t: np.asarray(v)[keep] for t, v in target.truths.items()}
    components = evaluator.components
    rankings: dict[str, dict] = {}

    def combined(members: tuple[str, ...]) -> dict:
        return dict(zip(scored, combine_population([{c: evaluator.values[k][c] for c in members} for k in scored],
                                                   members, evaluator.config.combine)))

    rankings["the evaluator: " + " + ".join(components)] = combined(tuple(components))
    if all(c in components for c in (*AZ_NAS_DATA, "params")):
        rankings["AZ-NAS's assembly of these values (" + " + ".join(AZ_NAS_DATA) + " + params)"] = \
            combined((*AZ_NAS_DATA, "params"))
    for component in components:
        rankings[component] = {k: evaluator.values[k][component] for k in scored}
    rows = []
    for method, per_class in rankings.items():
        scores = np.array([per_class[canonical[i]] for i in keep])
        row = {"method": method, "seed": evaluator.config.seed, "num_archs": len(keep),
               "num_classes_scored": len(scored), "complete": len(keep) == len(canonical),
               "published_kendall_tau": PUBLISHED_TAU.get(method) if method == "params" else None}  # others: other settings
        for truth, values in truths.items():
            row[truth] = ranking_metrics(scores, values)
        first = row[next(iter(truths))]
        row.update(kendall_tau=first["kendall_tau"], spearman=first["spearman"],
                   found_true=first["true_accuracy_of_best_scored"])
        rows.append(row)
    rows.append({"method": "random (expected)", "num_archs": len(keep), "complete": len(keep) == len(canonical),
                 **{t: random_ranking_expectation(v) for t, v in truths.items()}})
    per_class_s = [evaluator.seconds[k] for k in scored]
    report = {
        "protocol": {
            "target": target.name, "space": space.describe(), "cells": len(canonical),
            "isomorphism_classes": len(set(canonical)), "classes_in_order": len(order), "truths": list(truths),
            "evaluator": evaluator.describe(), "evaluator_file": str(args.evaluator),
            "data": f"{target.data.summary()}; training examples, seed {evaluator.config.seed}",
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        },
        "timing": {"slices": slices, "wall_s": sum(s["wall_s"] for s in slices),
                   "worker_cpu_s": sum(s["worker_cpu_s"] for s in slices),
                   "sum_of_class_seconds": float(np.sum(per_class_s)),
                   "mean_class_seconds": float(np.mean(per_class_s))},
        "rows": rows,
        "against_paper_settings": against_paper_settings(target, canonical, evaluator, paper_values),
    }
    (out / "zero_cost_assembly.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "zero_cost_assembly.md").write_text(markdown(report))


def against_paper_settings(target, canonical: list, evaluator: ZeroCostEvaluator, paper_values: dict) -> list[dict]:
    """The evaluator's components and combination beside the same computed at the papers' settings (e.g. batch 64
    instead of 16), on the classes both have scored: what the evaluator's cheaper settings cost in tau.
    ``canonical``: the canonical class of each of the target's archs."""
    components = evaluator.components
    labels = {c: PAPER_LABELS.get(c, c) for c in components}
    if not paper_values or not all(label in paper_values for label in labels.values()):
        return []
    shared = [k for k in evaluator.values if all(k in paper_values[label] for label in labels.values())]
    if len(shared) < 2:
        return []
    shared_set = set(shared)
    keep = [i for i, c in enumerate(canonical) if c in shared_set]
    truth = np.asarray(target.truths[next(iter(target.truths))])[keep]
    ours = [evaluator.values[k] for k in shared]
    papers = [{c: paper_values[labels[c]][k] for c in components} for k in shared]
    rows = []
    for name, members in [("the combination", tuple(components)), *((c, (c,)) for c in components)]:
        taus = []
        for values in (ours, papers):
            scores = combine_population([{c: v[c] for c in members} for v in values], members,
                                        evaluator.config.combine) if len(members) > 1 else [v[members[0]] for v in values]
            per_class = dict(zip(shared, scores))
            taus.append(ranking_metrics(np.array([per_class[canonical[i]] for i in keep]), truth)["kendall_tau"])
        rows.append({"method": name, "classes": len(shared), "num_archs": len(keep), "kendall_tau": taus[0],
                     "kendall_tau_paper_settings": taus[1]})
    return rows


def markdown(report: dict) -> str:
    p, timing = report["protocol"], report["timing"]
    first = p["truths"][0]
    scored = report["rows"][0]["num_classes_scored"]
    lines = [f"# A training-free evaluator on every {p['target'].upper()} cell: `{p['evaluator_file']}`", "",
             f"- {report['rows'][0]['num_archs']:,} of {p['cells']:,} cells ({scored:,} of "
             f"{p['isomorphism_classes']:,} isomorphism classes, each scored once); combined by "
             f"{p['evaluator']['combine']} over the scored classes",
             "- settings per proxy: " + "; ".join(f"{name} {json.dumps(d['settings'])}"
                                                   for name, d in p["evaluator"]["proxies"].items()),
             f"- data: {p['data']}; {p['machine']}, torch {p['torch']}, {p['date']}",
             f"- time: {timing['wall_s'] / 60:.1f} min wall-clock, {timing['worker_cpu_s'] / 60:.1f} min of worker CPU "
             f"time, {timing['mean_class_seconds']:.3f} s per class in a worker ("
             + "; ".join(f"`{s['command']}`: {s['classes']:,} classes in {s['wall_s'] / 60:.1f} min on "
                         f"{s['workers']} workers ({s['date']})" for s in timing["slices"]) + ")", ""]
    lines.append(metrics_table(report["rows"], p["truths"], seconds=False))
    fmt = ".3f"
    compared = report.get("against_paper_settings") or []
    if compared:
        lines += ["", f"## These settings against the papers' ({compared[0]['classes']:,} classes, "
                      f"{compared[0]['num_archs']:,} cells scored both ways by `scripts/zero_cost_ranking.py`)", "",
                  f"Kendall tau against {first} on those cells only (whole classes drawn uniformly: a sample whose "
                  "taus differ from those over every cell above).", ""]
        lines.append(markdown_table(["ranking", "these settings", "papers' settings"],
                                    [[r["method"], r["kendall_tau"], r["kendall_tau_paper_settings"]] for r in compared],
                                    "lrr", formats=[None, fmt, fmt]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
