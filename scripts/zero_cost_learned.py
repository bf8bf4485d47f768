"""A learned combination of zero-cost proxies on NAS-Bench-201: ranking quality against the number of labelled archs.

    python scripts/zero_cost_learned.py          # after scripts/zero_cost_ranking.py --target nb201 has scored cells

For N = 10, 25, 50, 100, 400 labelled cells and 5 draws each (seeds 0-4): draw N cells uniformly from the cells
every proxy has scored, fit a model on their proxy values (as ranks) and, optionally, a one-hot encoding of the
cell and, optionally, the cell-structure features of ``nasframe.evaluation.surrogate.CELL_FEATURES``, with their
CIFAR-10 test accuracy as the label, and rank the cells not drawn. Metrics are over those cells only, less the
isomorphic twins of the drawn cells (the same network: the model never sees the archs it is scored on): against
CIFAR-10 (what it was fitted on) and, as the check, CIFAR-100 and ImageNet16-120 (never tuned on). Models
(``MODELS``): gradient-boosted trees, ridge regression and a pairwise-logistic linear score, with and without the
arch encoding and the cell features, and the mean rank of the trees and the pairwise score (the first row: above
the trees alone at every N on CIFAR-10, the best row at every N but 25); the zero-shot rows of the same cells
(the best single proxy, AZ-NAS's log-rank sum) are given beside them. Writes ``<out>/zero_cost_learned.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from nasframe.benchmarks.nb201 import NB201Benchmark
from nasframe.core.space import DataSpec
from nasframe.evaluation.ranking import ranking_metrics
from nasframe.evaluation.surrogate import ProxySurrogate
from nasframe.evaluation.zero_cost.combine import combine_population
from nasframe.markdown import markdown_table
from search_spaces.nb201 import NB201Space

from zero_cost_ranking import COMBINATIONS, TRUTHS, load_values  # scripts/ is on the path when a script runs

LABELLED = (10, 25, 50, 100, 400)
DRAWS = 5
MIN_SCORED = 200  # cells a draw must leave to be scored on
#: row -> (model, arch encoding, cell features); the first row is the one to use (see the docstring)
MODELS = {"gbt+pairwise + arch encoding + cell features": ("gbt+pairwise", True, True),
          "pairwise + cell features": ("pairwise", False, True), "pairwise": ("pairwise", False, False),
          "gbt + arch encoding + cell features": ("gbt", True, True),
          "gbt + arch encoding": ("gbt", True, False), "gbt": ("gbt", False, False),
          "ridge + arch encoding": ("ridge", True, False), "ridge": ("ridge", False, False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=Path, default=Path("results/zero_cost_nb201"))
    parser.add_argument("--out", type=Path, default=Path("results/zero_cost_nb201"))
    args = parser.parse_args()
    space = NB201Space(DataSpec(3, (32, 32), 10), channels=16, cells_per_stage=5)
    values = load_values(args.values, space)  # component -> {canonical class: value}
    components = sorted(values)
    cells = [a for a in space.enumerate() if all(space.canonical(a) in values[c] for c in components)]
    classes = [space.canonical(a) for a in cells]
    per_cell = [{c: values[c][cls] for c in components} for cls in classes]
    benchmark = NB201Benchmark()
    truths = {t: np.array([benchmark.metric(space.format(a), t) for a in cells]) for t in TRUTHS}
    rows = []
    started = time.perf_counter()
    for n in LABELLED:
        for draw in range(DRAWS):
            rng = np.random.default_rng(draw)
            chosen = rng.choice(len(cells), size=n, replace=False)
            seen = {classes[i] for i in chosen}  # an isomorphic twin of a labelled cell is the same network:
            rest = np.array([i for i in range(len(cells)) if classes[i] not in seen])  # never scored on it
            if len(rest) < MIN_SCORED:
                continue  # too few cells left to measure a ranking: the row stays empty until more are scored
            for method, (model, encode, structure) in MODELS.items():
                surrogate = ProxySurrogate(space, components, per_cell, model, encode, seed=draw,  # ranks among all
                                           cell_features=structure)
                surrogate.fit([cells[i] for i in chosen], [per_cell[i] for i in chosen], truths["cifar10_test"][chosen])
                predicted = surrogate.predict([cells[i] for i in rest], [per_cell[i] for i in rest])
                rows.append(_row(f"learned: {method}", draw, n, predicted, truths, rest))
            for name, combo in [*((c, (c,)) for c in components), *COMBINATIONS.items()]:
                if all(c in components for c in combo):
                    scores = np.array(combine_population([per_cell[i] for i in rest], combo)) if len(combo) > 1 \
                        else np.array([per_cell[i][combo[0]] for i in rest])
                    rows.append(_row(f"zero-shot: {name}", draw, n, scores, truths, rest))
    report = {"protocol": {"cells": len(cells), "components": components, "labelled": list(LABELLED),
                           "draws": DRAWS, "label": "cifar10_test", "command": "python " + " ".join(sys.argv),
                           "seconds": time.perf_counter() - started, "date": time.strftime("%Y-%m-%d")},
              "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "zero_cost_learned.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "zero_cost_learned.md").write_text(markdown(report))


def _row(method: str, draw: int, labelled: int, scores: np.ndarray, truths: dict, rest: np.ndarray) -> dict:
    row = {"method": method, "seed": draw, "num_labelled": labelled, "num_archs": len(rest)}
    for truth, values in truths.items():
        metrics = ranking_metrics(scores, values[rest])
        row[truth] = metrics
        if truth == "cifar10_test":
            row.update({"kendall_tau": metrics["kendall_tau"], "spearman": metrics["spearman"],
                        "found_true": metrics["true_accuracy_of_best_scored"]})
    return row


def markdown(report: dict) -> str:
    p = report["protocol"]
    lines = ["# A learned combination of zero-cost proxies on NAS-Bench-201", "",
             f"- {p['cells']} cells scored by every proxy ({', '.join(p['components'])}); labels: {p['label']}; "
             f"{p['draws']} draws per N; metrics on the cells not drawn",
             f"- `{p['command']}`, {p['date']}", "",
             "Kendall tau against CIFAR-10 test (mean ± std over draws; C-100 and IN16 columns: the check, never fitted on)",
             ""]
    table = []
    methods = list(dict.fromkeys(r["method"] for r in report["rows"]))
    zero_shot = [m for m in methods if m.startswith("zero-shot")]
    best_zero = sorted(zero_shot, key=lambda m: -np.mean([r["kendall_tau"] for r in report["rows"] if r["method"] == m]))[:3]
    for method in [m for m in methods if m.startswith("learned")] + best_zero:
        cells = []
        for n in p["labelled"]:
            taus = [r["kendall_tau"] for r in report["rows"] if r["method"] == method and r["num_labelled"] == n]
            cells.append(f"{np.mean(taus):.3f} ± {np.std(taus):.3f}" if taus else "-")
        check = [r for r in report["rows"] if r["method"] == method and r["num_labelled"] == 100]
        for truth in ("cifar100_test", "imagenet16_120_test"):
            cells.append(f"{np.mean([r[truth]['kendall_tau'] for r in check]):.3f}" if check else "-")
        table.append([method, *cells])
    lines.append(markdown_table(["method", *(f"N={n}" for n in p["labelled"]), "C-100 tau (N=100)", "IN16 tau (N=100)"],
                                table, "l" + "r" * (len(p["labelled"]) + 2)))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
