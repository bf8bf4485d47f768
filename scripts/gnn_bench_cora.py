"""NAS-Bench-Graph on Cora: train the GNN supernet, select, rank it against the benchmark, and compare with search
on the benchmark table itself.

    python scripts/gnn_bench_cora.py                                   # uniform sampling (configs/experiment/gnn_bench_cora_cpu.yaml)
    python scripts/gnn_bench_cora.py --sampler pada                    # PA&DA path (and data) sampling
    python scripts/gnn_bench_cora.py --sampler fewshot -- sampler.choice=op_1   # few-shot split of node 1's op
    python scripts/gnn_bench_cora.py --tabular-only                    # only the tabular evolutionary vs random curves

Each supernet run: ``nasframe search +experiment=gnn_bench_cora_cpu sampler=<sampler>`` (full-batch training,
evolutionary selection on the validation nodes, export) into ``runs/experiments/gnn_bench_cora_cpu_<label>``, then
``nasframe rank`` on ``--num-archs`` distinct models (canonical forms, uniform without replacement; 0 = all 26,206)
against NAS-Bench-Graph's Cora test accuracy, and its validation accuracy alongside. The tabular part runs
evolutionary and random search on the table (search on ``cora_valid``, report ``cora_test``) over ``--seeds``.
Everything lands in ``results/gnn_bench_cora_cpu/``: one ``run_<label>.json`` and ``ranking_<label>.png`` per
supernet run, ``tabular.{json,md,png}``, and ``README.md``, rebuilt from every run present (and from
``all_<label>.json``: a run ranked on every model with ``nasframe rank ... ranking.num_archs=0``, its metrics
without the per-model list).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from nasframe.benchmarks.nasbench_graph import NASBenchGraph
from nasframe.benchmarks.tabular_search import run_tabular
from nasframe.cli import compose_config
from nasframe.config import RankConfig
from nasframe.hardware import describe_device
from nasframe.markdown import markdown_table
from nasframe.rank import run_rank
from nasframe.training.checkpoint import CHECKPOINT_NAME, load_checkpoint

from experiment_steps import search_to_the_end  # scripts/ is on the path when a script runs

EXPERIMENT = "gnn_bench_cora_cpu"
TRUTH, ALSO = "cora_test", "cora_valid"
RANDOM_QUERIES = 100  # the reference: random search with 100 benchmark queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sampler", default="uniform", help="sampler config group option: uniform, pada, fewshot")
    parser.add_argument("--label", default=None, help="run label (default: the sampler name)")
    parser.add_argument("--num-archs", type=int, default=2000, help="distinct models to rank; 0 = all 26,206")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    parser.add_argument("--tabular-only", action="store_true")
    parser.add_argument("--max-queries", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("results") / EXPERIMENT)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the search (after --)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)

    if args.tabular_only or not (args.out / "tabular.json").is_file():
        started = time.perf_counter()
        cfg = compose_config("tabular", [
            "space=gnn_bench", "benchmark=nasbench_graph", "benchmark.dataset=cora", "dataset=planetoid",
            f"search_metric={ALSO}", f"report_metric={TRUTH}", f"max_queries={args.max_queries}",
            f"seeds={args.seeds}"])
        run_tabular(cfg, args.out)
        log_command(args.out / "tabular.json", time.perf_counter() - started)
    if not args.tabular_only:
        run_supernet(args)
    (args.out / "README.md").write_text(render(args.out))
    print((args.out / "README.md").read_text())


def log_command(path: Path, seconds: float) -> None:
    """Add the command, machine and versions to a result file written by the library."""
    result = json.loads(path.read_text())
    result["command"] = "python " + " ".join(sys.argv)
    result["seconds"] = seconds
    result["versions"] = versions()
    path.write_text(json.dumps(result, indent=1) + "\n")


def versions() -> dict[str, str]:
    import torch_geometric

    return {"python": platform.python_version(), "torch": torch.__version__, "torch_geometric": torch_geometric.__version__}


def run_supernet(args: argparse.Namespace) -> None:
    label = args.label or args.sampler
    run_dir = Path("runs/experiments") / f"{EXPERIMENT}_{label}"
    overrides = [f"+experiment={EXPERIMENT}", f"sampler={args.sampler}", *args.overrides]
    cfg = compose_config("search", overrides, resume=run_dir if args.resume else None)

    outcome, search_seconds = search_to_the_end(cfg, run_dir)

    rank_cfg = OmegaConf.structured(RankConfig)
    rank_cfg.run = str(run_dir)
    rank_cfg.benchmark = {"name": "nasbench_graph", "dataset": "cora"}
    rank_cfg.ranking.num_archs = args.num_archs
    rank_cfg.ranking.sample_seed = args.sample_seed
    rank_cfg.ranking.truth_metric = TRUTH
    rank_cfg.ranking.also_against = [ALSO]
    rank_cfg.ranking.canonical = True
    rank_cfg.evaluator = cfg.evaluator
    rank_cfg.device, rank_cfg.threads = cfg.device, cfg.threads
    report, rank_out = run_rank(rank_cfg)

    benchmark = NASBenchGraph(dataset="cora")
    found = benchmark.query(outcome.native)
    best_scored = report.archs[max(range(len(report.scores)), key=report.scores.__getitem__)]
    history = json.loads((run_dir / "selection.json").read_text())["history"]
    report_md = (run_dir / "report.md").read_text()
    timing = next((line for line in report_md.splitlines() if line.startswith("| time:")), "")
    summary = {
        "label": label,
        "command": "python " + " ".join(sys.argv),
        "overrides": overrides,
        "machine": describe_device(report.protocol["device"]),
        "versions": versions(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "search_seconds": search_seconds,
        "timing": timing.strip("| ").replace(" | ", ": "),
        "found_arch": {"native": outcome.native, "supernet_valid_accuracy": outcome.valid_accuracy,
                       "supernet_test_accuracy": outcome.test_accuracy, "queries": len(history),
                       "benchmark": {TRUTH: found[TRUTH], ALSO: found[ALSO]}},
        "best_scored_arch": {"native": best_scored, "benchmark": {m: benchmark.metric(best_scored, m) for m in (TRUTH, ALSO)}},
        "fewshot_partition": fewshot_partition(run_dir),
        "ranking": report.to_dict(),
    }
    (args.out / f"run_{label}.json").write_text(json.dumps(summary, indent=1) + "\n")
    shutil.copyfile(rank_out / "ranking.png", args.out / f"ranking_{label}.png")


def fewshot_partition(run_dir: Path) -> list[dict[str, list[str]]] | None:
    """The sub-spaces of a few-shot run (each a restriction of the full space), from its checkpoint."""
    sampler = load_checkpoint(run_dir / CHECKPOINT_NAME).get("sampler", {})
    partition = sampler.get("partition") if isinstance(sampler, dict) else None
    return json.loads(partition) if isinstance(partition, str) else partition  # stored as JSON text


def render(out: Path) -> str:
    """The summary page: one row per supernet run found in ``out``, then the tabular baselines."""
    runs = sorted((json.loads(p.read_text()) for p in out.glob("run_*.json")),
                  key=lambda run: (not run["label"].startswith("uniform"), run["label"]))  # the baseline first
    tabular = json.loads((out / "tabular.json").read_text()) if (out / "tabular.json").is_file() else None
    optimum = tabular["optimum"] if tabular else NASBenchGraph(dataset="cora").optimum(TRUTH)[1]
    lines = ["# NAS-Bench-Graph on Cora: supernet ranking and search (2 CPU cores)", ""]
    if runs:
        first = runs[0]
        cfg, p = first["config"], first["ranking"]["protocol"]
        t, s = cfg["trainer"], cfg["space"]
        lines += [
            f"- machine: {first['machine']}; " + ", ".join(f"{k} {v}" for k, v in first["versions"].items()),
            f"- supernet: NAS-Bench-Graph Cora model (hidden {s['hidden']}, {s['pre_layers']} pre / {s['post_layers']} "
            f"post layers, dropout {s['dropout']}), {t['epochs']} full-batch steps on the 140 training nodes, "
            f"{t['optimizer']} lr {t['lr']} wd {t['weight_decay']}; selection: evolutionary on the 500 validation nodes",
            f"- ranking: {p['archs']}; score = {p['score']}; BN {p['bn']}; truth = NAS-Bench-Graph `{TRUTH}`, "
            f"also against `{ALSO}`. The sample draws encodings uniformly (59,040) and keeps distinct models, so a "
            f"model weighs as its number of encodings; the ranking of every model below weighs each once",
            f"- benchmark optimum ({TRUTH}): {optimum:.2f}; best in the ranked sample: "
            f"{first['ranking']['metrics']['best_true_accuracy_in_sample']:.2f}",
            "",
        ]
        table = []
        for run in runs:
            r = run["ranking"]
            m, v = r["metrics"], r["against"][ALSO]
            found = run["found_arch"]["benchmark"]
            table.append([
                run["label"], m["kendall_tau"], v["kendall_tau"], m["spearman"], m["kendall_tau_true_top_10pct"],
                m["precision_at_top_5pct"], m["precision_at_top_10pct"], f"{run['best_scored_arch']['benchmark'][TRUTH]:.2f}",
                f"{found[TRUTH]:.2f} ({found[ALSO]:.2f})", f"{run['search_seconds'] / 60:.1f} min",
                f"{r['scoring']['seconds'] / 60:.1f} min ({r['scoring']['archs']} archs, {r['scoring']['archs_per_second']:.1f}/s)"])
        lines.append(markdown_table(
            ["sampler", "Kendall tau (test)", "Kendall tau (valid)", "Spearman (test)", "Kendall tau in the true top 10%",
             "precision@top-5%", "precision@top-10%", "best-scored arch: test", "selected arch: test (valid)",
             "training + selection", "scoring"],
            table, "l" + "r" * 10, formats=[None, *[".3f"] * 6, None, None, None, None]))
        lines += ["", "Per run: command, found arch, timings (training / selection / total)."]
        for run in runs:
            lines += [
                f"- **{run['label']}**: `{run['command']}`; overrides `{' '.join(run['overrides'])}`; found "
                f"`{run['found_arch']['native']}` (supernet valid {run['found_arch']['supernet_valid_accuracy']:.2f}, "
                f"{run['found_arch']['queries']} queries); {run['timing']}; ![ranking](ranking_{run['label']}.png)",
            ]
            if run.get("fewshot_partition"):
                parts = "; ".join(" & ".join(f"{k} in {{{', '.join(v)}}}" for k, v in part.items())
                                  for part in run["fewshot_partition"])
                lines.append(f"  - {len(run['fewshot_partition'])} sub-supernets: {parts}")
    for path in sorted(out.glob("all_*.json")):  # a run ranked on every model (see the module docstring)
        r = json.loads(path.read_text())
        m, v, sc = r["metrics"], r["against"][ALSO], r["scoring"]
        lines += [
            "",
            f"## Every model: {r['label']} ranked on {r['protocol']['archs']}",
            "",
            f"Command: `{r['command']}`. Kendall tau {m['kendall_tau']:.3f} against `{TRUTH}` and {v['kendall_tau']:.3f} "
            f"against `{ALSO}`; Spearman {m['spearman']:.3f}; precision@top-5% {m['precision_at_top_5pct']:.3f}, "
            f"@top-10% {m['precision_at_top_10pct']:.3f}; Kendall tau in the true top 10% "
            f"{m['kendall_tau_true_top_10pct']:.3f}; the best-scored model's `{TRUTH}`: "
            f"{m['true_accuracy_of_best_scored']:.2f} (best of all: {m['best_true_accuracy_in_sample']:.2f}). "
            f"Scoring took {sc['seconds'] / 60:.1f} min ({sc['archs_per_second']:.1f} models/s).",
            "",
            f"![every model]({path.stem}.png)",
        ]
    if tabular:
        sel = tabular["selectors"]
        k = min(RANDOM_QUERIES, tabular["protocol"]["max_queries"]) - 1
        lines += [
            "",
            f"## Search on the benchmark table (`{tabular['protocol']['search_metric']}` searched, "
            f"`{tabular['protocol']['report_metric']}` reported, {len(tabular['protocol']['seeds'])} seeds)",
            "",
            f"Command: `{tabular.get('command', '')}`. Random search with {k + 1} queries: "
            f"{sel['random']['mean'][k]:.2f} ± {sel['random']['std'][k]:.2f}; evolutionary with {k + 1}: "
            f"{sel['evolutionary']['mean'][k]:.2f} ± {sel['evolutionary']['std'][k]:.2f}.",
            "",
            (out / "tabular.md").read_text().split("\n", 2)[2].strip() if (out / "tabular.md").is_file() else "",
            "",
            "![tabular search curves](tabular.png)",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
