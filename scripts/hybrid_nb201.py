"""The hybrid evaluator against its parts: a trained supernet's scores and zero-cost proxies on the same archs.

    python scripts/hybrid_nb201.py      # uses the committed results/nb201_ranking_nb201_cifar10_cpu.json

Takes the supernet scores of a committed NB201 ranking (its archs, its held-out accuracies with inherited
weights), computes zero-cost proxies of the same archs (NB201 C=16 N=5 on CIFAR-10, each proxy's paper settings,
seed 0; values kept in ``results/hybrid_nb201/values_<proxy>.jsonl``) and ranks the archs by the supernet alone,
each proxy alone, and their log-rank sum (``evaluator=hybrid``: AZ-NAS's aggregation among the ranked archs),
against the benchmark's CIFAR-10 test accuracy. Writes ``results/hybrid_nb201.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from nasframe.core.space import DataSpec
from nasframe.data.base import build_dataset
from nasframe.evaluation.ranking import ranking_metrics
from nasframe.evaluation.zero_cost import ZeroCostConfig, ZeroCostEvaluator
from nasframe.evaluation.zero_cost.combine import combine_population
from nasframe.markdown import markdown_table
from search_spaces.nb201 import NB201Space

PROXIES = ("params", "flops", "synflow", "az_nas")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranking", type=Path, default=Path("results/nb201_ranking_nb201_cifar10_cpu.json"))
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ranking = json.loads(args.ranking.read_text())["ranking"]
    space = NB201Space(DataSpec(3, (32, 32), 10), **ranking["protocol"]["space"]["config"])
    archs = [space.parse(a["arch"]) for a in ranking["archs"]]
    truth = [a["truth"] for a in ranking["archs"]]
    values = [{"supernet": a["score"]} for a in ranking["archs"]]
    data = build_dataset({"name": "cifar10", "augment": False})
    components: dict[str, list[str]] = {}
    for proxy in PROXIES:
        evaluator = ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(
            proxy=proxy, cache_file=str(args.out / "hybrid_nb201" / f"values_{proxy}.jsonl")),
            train=data.train, prepare=data.prepare)
        components[proxy] = list(evaluator.components)
        for arch, row in zip(archs, values):
            row.update(evaluator.component_values(arch))
    rows = []

    def add(method: str, parts: list[str]) -> None:
        scores = (combine_population(values, parts) if len(parts) > 1 else [v[parts[0]] for v in values])
        metrics = ranking_metrics(scores, truth)
        rows.append({"method": method, "seed": 0, "num_archs": len(archs), "kendall_tau": metrics["kendall_tau"],
                     "spearman": metrics["spearman"], "found_true": metrics["true_accuracy_of_best_scored"],
                     **metrics})

    add("supernet", ["supernet"])
    for proxy, parts in components.items():
        add(proxy, parts)
        add(f"hybrid: supernet + {proxy}", ["supernet", *parts])
    report = {"protocol": {"ranking": str(args.ranking), "supernet": ranking["protocol"].get("score"),
                           "supernet_epochs": ranking["protocol"].get("supernet_epochs"), "archs": len(archs),
                           "truth": ranking["protocol"].get("truth_metric"), "command": "python " + " ".join(sys.argv),
                           "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__}, "rows": rows}
    (args.out / "hybrid_nb201.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["# Hybrid (supernet + proxies, log-rank sum) against its parts, NB201 CIFAR-10", "",
             f"- the {len(archs)} archs and supernet scores of `{args.ranking}` ({report['protocol']['supernet_epochs']} "
             f"epochs); truth {report['protocol']['truth']}", f"- `{report['protocol']['command']}`, {report['protocol']['date']}",
             "", markdown_table(
                 ["method", "Kendall tau", "Spearman", "P@10%", "true acc. of best-scored"],
                 [[r["method"], r["kendall_tau"], r["spearman"], r["precision_at_top_10pct"], r["found_true"]] for r in rows],
                 "lrrrr", formats=[None, ".3f", ".3f", ".2f", ".2f"])]
    (args.out / "hybrid_nb201.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
