"""NAS-Bench-201 ranking experiment: train the supernet on CIFAR-10's search split, select, rank vs the benchmark.

    python scripts/nb201_ranking.py                                      # CPU budget (configs/experiment/nb201_cifar10_cpu.yaml)
    python scripts/nb201_ranking.py --experiment nb201_cifar10_gpu       # the full protocol on a GPU
    python scripts/nb201_ranking.py -- trainer.epochs=5 sampler=uniform  # extra Hydra overrides after --

Steps: ``nasframe search +experiment=<name>`` (train, evolutionary selection, export) into ``--run-dir``, then
``nasframe rank`` on ``--num-archs`` archs against the NAS-Bench-201 table, then a report in ``results/``:
``nb201_ranking_<experiment>.md`` / ``.json`` / ``.png``. ``--resume`` continues training from the run
directory's checkpoint (for sessions shorter than the run), and the ranking from the scores already kept in the
run's ``ranking/scores.jsonl`` (``--rank-seconds`` stops scoring after a time slice).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from nasframe.benchmarks.nb201 import NB201Benchmark
from nasframe.cli import compose_config
from nasframe.hardware import describe_device
from nasframe.config import RankConfig
from nasframe.evaluation.ranking import ScoringStopped
from nasframe.markdown import markdown_table
from nasframe.rank import run_rank

from experiment_steps import search_to_the_end  # scripts/ is on the path when a script runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="nb201_cifar10_cpu")
    parser.add_argument("--run-dir", type=Path, default=None, help="default: runs/experiments/<experiment>")
    parser.add_argument("--num-archs", type=int, default=200)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    parser.add_argument("--rank-seconds", type=float, default=0.0,
                        help="stop scoring after this many seconds; the scores so far are kept and --resume continues")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after --)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")

    run_dir = args.run_dir or Path("runs/experiments") / args.experiment
    overrides = [f"+experiment={args.experiment}", *args.overrides]
    cfg = compose_config("search", overrides, resume=run_dir if args.resume else None)

    outcome, search_seconds = search_to_the_end(cfg, run_dir)

    rank_cfg = OmegaConf.structured(RankConfig)
    rank_cfg.run = str(run_dir)
    rank_cfg.benchmark = {"name": "nb201"}
    rank_cfg.ranking.num_archs = args.num_archs
    rank_cfg.ranking.sample_seed = args.sample_seed
    rank_cfg.evaluator = cfg.evaluator
    rank_cfg.device, rank_cfg.threads = cfg.device, cfg.threads
    rank_cfg.ranking.stop_after_s = args.rank_seconds
    try:
        report, rank_out = run_rank(rank_cfg)
    except ScoringStopped as stopped:  # a time slice of a long ranking (ranking.stop_after_s)
        print(f"ranking stopped early: {stopped}: python {' '.join(a for a in sys.argv if a != '--resume')} --resume")
        return

    benchmark = NB201Benchmark()
    found_true = benchmark.metric(outcome.native, "cifar10_test")
    history = json.loads((run_dir / "selection.json").read_text())["history"]
    report_md = (run_dir / "report.md").read_text()
    timing_line = next((line for line in report_md.splitlines() if line.startswith("| time:")), "")
    data_line = next((line[len("- data: "):] for line in report_md.splitlines() if line.startswith("- data: ")), "")
    summary = {
        "experiment": args.experiment,
        "command": "python " + " ".join(sys.argv),
        "overrides": overrides,
        "machine": describe_device(report.protocol["device"]),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "config": OmegaConf.to_container(cfg, resolve=True),
        "data": data_line,
        "search_seconds": search_seconds,
        "found_arch": {"native": outcome.native, "supernet_valid_accuracy": outcome.valid_accuracy,
                       "cifar10_test_true": found_true, "queries": len(history)},
        "ranking": report.to_dict(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"nb201_ranking_{args.experiment}"
    Path(f"{stem}.json").write_text(json.dumps(summary, indent=1) + "\n")
    shutil.copyfile(rank_out / "ranking.png", f"{stem}.png")
    Path(f"{stem}.md").write_text(render(summary, report, timing_line, stem.name))
    print(Path(f"{stem}.md").read_text())


def render(summary: dict, report, timing_line: str, stem: str) -> str:
    cfg = summary["config"]
    t, m = cfg["trainer"], report.metrics
    p = report.protocol
    lines = [
        f"# NAS-Bench-201 supernet ranking on CIFAR-10 ({summary['experiment']})",
        "",
        f"- command: `{summary['command']}`",
        f"- machine: {summary['machine']}; python {summary['versions']['python']}, torch {summary['versions']['torch']}",
        f"- supernet: NB201 C={cfg['space']['channels']} N={cfg['space']['cells_per_stage']}, {cfg['sampler']['name']} "
        f"sampling, {t['epochs']} epochs, batch {t['batch_size']}, SGD lr {t['lr']} cosine, momentum {t['momentum']}, "
        f"wd {t['weight_decay']}",
        f"- data: {summary['data']}",
        f"- ranking protocol: {p['archs']}; score = {p['score']}; BN {p['bn']}; truth = NAS-Bench-201 `{p['truth_metric']}`",
        f"- wall clock: search (training + selection + export) {summary['search_seconds'] / 60:.1f} min; "
        f"scoring {len(report.archs)} archs {report.seconds / 60:.1f} min ({report.archs_per_second:.2f} archs/s)",
        f"- {timing_line.strip('| ').replace(' | ', ': ')}" if timing_line else "",
        "",
        markdown_table(["metric", "value"], [
            ["Kendall tau", f"{m['kendall_tau']:.3f}"],
            ["Spearman rho", f"{m['spearman']:.3f}"],
            ["precision@top-5%", f"{m['precision_at_top_5pct']:.3f}"],
            ["precision@top-10%", f"{m['precision_at_top_10pct']:.3f}"],
            ["Kendall tau within the true top 10%", f"{m['kendall_tau_true_top_10pct']:.3f}"],
            [f"true accuracy of the supernet's best-scored arch (of {len(report.archs)})",
             f"{m['true_accuracy_of_best_scored']:.2f}"],
            ["best true accuracy in the sample", f"{m['best_true_accuracy_in_sample']:.2f}"],
            [f"evolutionary search: found arch's true CIFAR-10 test accuracy ({summary['found_arch']['queries']} queries)",
             f"{summary['found_arch']['cifar10_test_true']:.2f}"],
        ], "lr"),
        "",
        f"Found arch: `{summary['found_arch']['native']}`. NAS-Bench-201 optimum: 94.37.",
        "",
        f"![supernet score vs true accuracy]({stem}.png)",
        "",
    ]
    return "\n".join(line for line in lines if line is not None)


if __name__ == "__main__":
    main()
