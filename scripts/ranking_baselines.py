"""The trivial baselines of the committed supernet rankings: #params, FLOPs and a random ranking, on the same archs.

    python scripts/ranking_baselines.py

Reads every committed ranking that lists its archs and their true accuracies (``results/nb201_ranking_*.json``,
``results/gnn_bench_cora_cpu/run_*.json``) and the sampler comparisons (whose arch sample is the documented one:
``sample_archs(space, num_archs, sample_seed)`` of the run's space), scores the same archs by parameter count
and, for image spaces, by multiply-accumulates of one forward pass (the network on the meta device: no data),
and writes the metrics of both beside a random ranking's expected values into ``results/ranking_baselines.{md,json}``.
Graph FLOPs depend on the graph and are left out here (``nasframe rank`` reports them with the data set bound).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from nasframe.benchmarks.nb201 import NB201Benchmark
from nasframe.core.registry import SPACES
from nasframe.core.space import DataSpec, space_from_description
from nasframe.evaluation.ranking import sample_archs
from nasframe.evaluation.zero_cost import ZeroCostConfig, ZeroCostEvaluator
from nasframe.markdown import markdown_table
from nasframe.rank import trivial_baselines

RESULTS = Path("results")


_COUNTERS: dict[str, ZeroCostEvaluator] = {}


def baselines(space, natives: list[str], truth: list[float]) -> dict[str, dict]:
    """#params (and FLOPs for image spaces), counted on the meta device, and a random ranking, on these archs."""
    key = json.dumps(space.describe(), sort_keys=True)  # rankings of one space share their counts
    if key not in _COUNTERS:
        proxies = ["params"] if space.takes_graphs else ["params", "flops"]
        _COUNTERS[key] = ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy=proxies))
    return trivial_baselines(_COUNTERS[key], natives, truth)


def main() -> None:
    entries = []
    for path in sorted(RESULTS.glob("nb201_ranking_*.json")) + sorted((RESULTS / "gnn_bench_cora_cpu").glob("run_*.json")):
        ranking = json.loads(path.read_text())["ranking"]
        space = space_from_description(ranking["protocol"]["space"])
        natives = [a["arch"] for a in ranking["archs"]]
        truth = [a["truth"] for a in ranking["archs"]]
        entries.append({"source": str(path), "space": ranking["protocol"]["space"], "num_archs": len(natives),
                        "supernet": ranking["metrics"], "baselines": baselines(space, natives, truth)})
    benchmark = NB201Benchmark()
    for path in sorted(RESULTS.glob("sampler_comparison_*.json")):
        report = json.loads(path.read_text())
        cfg = report["meta"]["config"]
        space = SPACES.get("nb201")(DataSpec(3, (32, 32), 10), channels=cfg["space"]["channels"],
                                    cells_per_stage=cfg["space"]["cells_per_stage"])
        row = report["rows"][0]
        command = report["meta"]["command"].split()
        num = row.get("num_archs") or (int(command[command.index("--num-archs") + 1]) if "--num-archs" in command
                                       else 100)  # compare_samplers.py's default
        archs = sample_archs(space, num, row.get("sample_seed", 0))
        natives = [space.format(a) for a in archs]
        truth = [benchmark.metric(n, "cifar10_test") for n in natives]
        entries.append({"source": str(path), "space": space.describe(), "num_archs": len(natives),
                        "supernet": {f"{r['method']} seed {r['seed']}": r["kendall_tau"] for r in report["rows"]},
                        "baselines": baselines(space, natives, truth)})
    out = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "entries": entries}
    (RESULTS / "ranking_baselines.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = ["# Committed supernet rankings beside their trivial baselines (same archs)", "",
             f"`{out['command']}`, {out['date']}", ""]
    table = []
    for e in entries:
        b = e["baselines"]
        supernet = e["supernet"]
        taus = (f"{supernet['kendall_tau']:.3f}" if "kendall_tau" in supernet
                else "; ".join(f"{k} {v:.2f}" for k, v in supernet.items()))
        table.append([f"`{e['source']}`", e["num_archs"], taus, b["params"]["kendall_tau"],
                      b["flops"]["kendall_tau"] if "flops" in b else None,
                      b["params"]["precision_at_top_10pct"], b["random (expected)"]["precision_at_top_10pct"],
                      b["params"]["true_accuracy_of_best_scored"], b["random (expected)"]["true_accuracy_of_best_scored"]])
    lines.append(markdown_table(
        ["ranking", "archs", "supernet Kendall tau", "#params tau", "FLOPs tau", "#params P@10%", "random P@10%",
         "#params: true acc. of best-scored", "random: expected"],
        table, "lrlrrrrrr", formats=[None, None, None, ".3f", ".3f", ".2f", ".2f", ".2f", ".2f"]))
    (RESULTS / "ranking_baselines.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
