"""The reduced-training proxy on NAS-Bench-201 CIFAR-10: train sampled cells standalone for a short CPU budget and rank
them by their validation accuracy, beside #params, FLOPs and a random ranking on the same cells.

    python scripts/reduced_training_nb201.py                                  # 30 cells, both budgets
    python scripts/reduced_training_nb201.py --cells 3 --budgets equal --train-limit 256 --out /tmp/r --runs /tmp/r/runs

**What it measures.** The baseline that tells what weight sharing buys at equal compute: "Zero-Cost Proxies for
Lightweight NAS" (Abdelfattah et al., ICLR 2021) reports the reduced-training proxy (EcoNAS-style fewer channels,
fewer cells, fewer epochs) at Spearman 0.61 on NAS-Bench-201 CIFAR-10. Here each cell is trained standalone with
``nasframe train`` (the library call, ``+protocol=nb201`` with the budget's overrides), scored by its accuracy on
the validation images after the last epoch (search on valid), and the scores are ranked against the table's
``cifar10_test`` (report on test).

**Budgets** (``--budgets``), the network and optimiser of the sampler comparison (results/sampler_comparison_*:
NB201 C=8, N=2, SGD lr 0.05 cosine, batch 64, weight decay 2.5e-4, 10,000 training images), so the two are
comparable in image passes:

* ``equal``: the whole comparison's supernet budget (6 epochs x 10,000 images = 60,000 image passes) shared by the
  30 cells: 2 epochs x 1,000 images each.
* ``10x``: ten times that: 2 epochs x 10,000 images each.

**Which cells.** ``--cells`` cells drawn uniformly without replacement from the 15,625 with
``nasframe.evaluation.ranking.sample_archs(space, cells, seed=--sample-seed)``; each trained once with seed 0
(``--seed``). #params and FLOPs are counted on the benchmark's own network size (C=16, N=5).

Runs go to ``--runs`` (one train run per budget and cell); a finished run is read back, not retrained.
Writes ``<out>/reduced_training_nb201.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from nasframe.benchmarks.nb201 import NB201Benchmark
from nasframe.cli import compose_config
from nasframe.core.registry import SPACES
from nasframe.core.space import DataSpec
from nasframe.evaluation.ranking import ranking_metrics, sample_archs
from nasframe.evaluation.zero_cost import ZeroCostConfig, ZeroCostEvaluator
from nasframe.evaluation_phase.run import run_train
from nasframe.markdown import markdown_table
from nasframe.rank import trivial_baselines

NAME = "reduced_training_nb201"
#: the comparison's supernet budget in image passes (configs/experiment/nb201_cifar10_compare_cpu.yaml)
SUPERNET_IMAGE_PASSES = 6 * 10_000
COMMON = ["space=nb201", "dataset=cifar10", "+protocol=nb201", "space.channels=8", "space.cells_per_stage=2",
          "trainer.batch_size=64", "trainer.lr=0.05", "trainer.weight_decay=2.5e-4", "trainer.progress=false",
          "train.eval_every=0", "dataset.valid_limit=1000"]
BUDGETS: dict[str, dict[str, int]] = {
    "equal": {"epochs": 2, "train_limit": 1_000},
    "10x": {"epochs": 2, "train_limit": 10_000},
}
ANCHOR_SPEARMAN = 0.61


def train_cell(native: str, budget: dict[str, int], seed: int, run_dir: Path, extra: list[str]) -> dict[str, Any]:
    """One cell through ``run_train`` (read back when its outcome is there)."""
    outcome_path = run_dir / "outcome.json"
    if not outcome_path.is_file():
        overrides = [*COMMON, f"arch='{native}'", f"seed={seed}", f"trainer.epochs={budget['epochs']}",
                     f"dataset.train_limit={budget['train_limit']}", *extra]
        if run_train(compose_config("train", overrides, resume=run_dir), run_dir) is None:
            raise RuntimeError(f"{run_dir}: training stopped early")
    outcome = json.loads(outcome_path.read_text())
    return {"arch": native, "valid_accuracy": outcome["final_valid_accuracy"],
            "test_accuracy": outcome["final_test_accuracy"], "train_seconds": outcome["seconds"]["train"],
            "run": str(run_dir)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="the training seed of every cell")
    parser.add_argument("--budgets", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    parser.add_argument("--train-limit", type=int, default=None, help="override every budget's images (toy runs)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--runs", type=Path, default=Path("runs") / NAME)
    parser.add_argument("overrides", nargs="*", help="further nasframe train overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    extra = [f"threads={args.threads}", *args.overrides]
    benchmark_space = SPACES.get("nb201")(DataSpec(3, (32, 32), 10))  # the benchmark's C=16, N=5 network
    natives = [benchmark_space.format(a) for a in sample_archs(benchmark_space, args.cells, args.sample_seed)]
    table = NB201Benchmark()
    truth = [table.metric(native, "cifar10_test") for native in natives]
    counter = ZeroCostEvaluator(benchmark_space, benchmark_space.build_subnet, ZeroCostConfig(proxy=["params", "flops"]))
    baselines = trivial_baselines(counter, natives, truth)
    budgets = []
    for name in args.budgets:
        budget = dict(BUDGETS[name])
        if args.train_limit is not None:
            budget["train_limit"] = args.train_limit
        rows = []
        for index, native in enumerate(natives):
            started = time.perf_counter()
            row = train_cell(native, budget, args.seed, args.runs / name / f"cell_{index:02d}", extra)
            rows.append({"cell": index, "table_test": truth[index], **row})
            print(f"{name} cell {index}: valid {row['valid_accuracy']:.2f} (table {truth[index]:.2f}) "
                  f"in {time.perf_counter() - started:.0f}s", flush=True)
        metrics = ranking_metrics([r["valid_accuracy"] for r in rows], truth)
        passes = budget["epochs"] * budget["train_limit"]
        budgets.append({"budget": name, **budget, "image_passes_per_cell": passes,
                        "image_passes_total": passes * len(natives),
                        "train_seconds_total": sum(r["train_seconds"] for r in rows), "metrics": metrics, "rows": rows})
    payload = {
        "command": "python scripts/reduced_training_nb201.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "torch": torch.__version__,
        "threads": args.threads, "cells": natives, "sample_seed": args.sample_seed, "training_seed": args.seed,
        "overrides": COMMON, "supernet_image_passes": SUPERNET_IMAGE_PASSES, "anchor_spearman": ANCHOR_SPEARMAN,
        "budgets": budgets, "baselines": baselines,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{NAME}.json").write_text(json.dumps(payload, indent=1) + "\n")
    (args.out / f"{NAME}.md").write_text(render(payload))
    for entry in budgets:
        print(f"{entry['budget']}: Kendall {entry['metrics']['kendall_tau']:.3f}, "
              f"Spearman {entry['metrics']['spearman']:.3f}")
    return payload


def render(payload: dict[str, Any]) -> str:
    header = ["ranking", "image passes per cell (total)", "Kendall tau", "Spearman", "P@top-10%",
              "true acc. of best-scored", "training wall time, all cells (1 run at a time)"]
    rows = []
    for entry in payload["budgets"]:
        m = entry["metrics"]
        rows.append([f"reduced training, {entry['budget']}: {entry['epochs']} epochs x {entry['train_limit']:,} images",
                     f"{entry['image_passes_per_cell']:,} ({entry['image_passes_total']:,})", f"{m['kendall_tau']:.3f}",
                     f"{m['spearman']:.3f}", f"{m['precision_at_top_10pct']:.2f}",
                     f"{m['true_accuracy_of_best_scored']:.2f}", f"{entry['train_seconds_total'] / 60:.1f} min"])
    for name, m in payload["baselines"].items():
        label = {"params": "baseline: #params", "flops": "baseline: FLOPs"}.get(name, f"baseline: {name}")
        rows.append([label, "0", f"{m['kendall_tau']:.3f}", f"{m['spearman']:.3f}", f"{m['precision_at_top_10pct']:.2f}",
                     f"{m['true_accuracy_of_best_scored']:.2f}", "-"])
    rows.append(["anchor: reduced training (Zero-Cost Proxies for Lightweight NAS)", "-", "-",
                 f"{payload['anchor_spearman']:.2f}", "-", "-", "-"])
    lines = [
        "# Reduced-training proxy on NAS-Bench-201 CIFAR-10",
        "",
        f"- command: `{payload['command']}`; {payload['machine']}, torch {payload['torch']}, "
        f"threads {payload['threads'] or 'default'}",
        f"- {len(payload['cells'])} cells drawn uniformly (sample seed {payload['sample_seed']}), each trained once "
        f"(seed {payload['training_seed']}) with `nasframe train` and `{' '.join(payload['overrides'])}`; score: "
        "accuracy on 1,000 validation images after the last epoch; truth: the table's cifar10_test",
        f"- weight sharing at the `equal` budget: one supernet run of the sampler comparison trains "
        f"{payload['supernet_image_passes']:,} image passes "
        "(results/sampler_comparison_nb201_cifar10_compare_cpu.md: Kendall tau -0.30 to -0.22 on 100 archs)",
        "- #params and FLOPs: the benchmark's own network (C=16, N=5), counted, not trained",
        "",
        markdown_table(header, rows),
        "",
        "## Per cell",
        "",
    ]
    for entry in payload["budgets"]:
        lines += [f"### {entry['budget']}", "",
                  markdown_table(["cell", "arch", "valid (proxy)", "test after training", "table test"],
                                 [[r["cell"], f"`{r['arch']}`", f"{r['valid_accuracy']:.2f}", f"{r['test_accuracy']:.2f}",
                                   f"{r['table_test']:.2f}"] for r in entry["rows"]]), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
