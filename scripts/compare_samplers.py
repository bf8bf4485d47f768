"""Ranking comparison of path samplers on NAS-Bench-201 / CIFAR-10 at one budget.

For each method and seed: ``nasframe search +experiment=<preset> sampler=...`` (same epochs and batch size for
all, so the same number of training steps), then ``nasframe rank`` on the same arch sample (``--sample-seed``)
against the NAS-Bench-201 table. Writes ``results/sampler_comparison_<preset>.{md,json,png}``. Each finished run
leaves ``row.json`` in its run directory and is not run again, so a long comparison can span several sessions.

    python scripts/compare_samplers.py                                  # reduced CPU budget, seeds 0 1
    python scripts/compare_samplers.py --experiment nb201_cifar10_gpu --num-archs 0 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nasframe.benchmarks.nb201 import NB201Benchmark
from nasframe.cli import CONFIG_DIR
from nasframe.config import RankConfig, register_configs
from nasframe.rank import run_rank
from nasframe.search import run_search

METHODS = {
    "uniform": ["sampler=uniform"],
    "pada": ["sampler=pada"],
    "fewshot-exhaustive": ["sampler=fewshot", "sampler.split=exhaustive", "sampler.choice=edge_1_0"],
    "fewshot-gradient": ["sampler=fewshot", "sampler.split=gradient", "sampler.max_subnets=4", "sampler.grad_batches=2"],
}
METRICS = ("kendall_tau", "spearman", "precision_at_top_5pct", "precision_at_top_10pct", "true_accuracy_of_best_scored")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="nb201_cifar10_compare_cpu")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--num-archs", type=int, default=100)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=Path("runs/compare"))
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    register_configs()
    benchmark = NB201Benchmark()
    rows = []
    for method in args.methods:
        for seed in args.seeds:
            run_dir = args.runs / args.experiment / f"{method}-seed{seed}"
            with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
                cfg = compose("search", overrides=[f"+experiment={args.experiment}", *METHODS[method], f"seed={seed}"])
            done = run_dir / "row.json"
            if done.is_file():  # finished by an earlier invocation: the comparison resumes across sessions
                rows.append(json.loads(done.read_text()))
                continue
            with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
                cfg = compose("search", overrides=[f"+experiment={args.experiment}", *METHODS[method], f"seed={seed}"])
            start = time.perf_counter()
            outcome = run_search(cfg, run_dir)
            search_seconds = time.perf_counter() - start
            if outcome is None:
                raise SystemExit("trainer.stop_after_epoch is not supported by the comparison: every run trains fully")
            rank_cfg = OmegaConf.structured(RankConfig)
            rank_cfg.run, rank_cfg.benchmark = str(run_dir), {"name": "nb201"}
            rank_cfg.ranking.num_archs, rank_cfg.ranking.sample_seed = args.num_archs, args.sample_seed
            rank_cfg.evaluator, rank_cfg.device, rank_cfg.threads = cfg.evaluator, cfg.device, cfg.threads
            report, _ = run_rank(rank_cfg)
            row = {"method": method, "seed": seed, **{m: report.metrics[m] for m in METRICS},
                   "found_arch": outcome.native, "found_true": benchmark.metric(outcome.native, "cifar10_test"),
                   "search_seconds": search_seconds, "scoring_seconds": report.seconds}
            rows.append(row)
            done.write_text(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    write(args, rows, cfg)


def write(args, rows: list[dict], cfg) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"sampler_comparison_{args.experiment}"
    meta = {"command": "python " + " ".join(sys.argv), "python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "config": OmegaConf.to_container(cfg, resolve=True)}
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    t, s = cfg.trainer, cfg.space
    lines = [
        f"# Sampler comparison on NAS-Bench-201 / CIFAR-10 ({args.experiment})",
        "",
        f"- command: `{meta['command']}`; python {meta['python']}, torch {meta['torch']}, {meta['threads']} threads (CPU)",
        f"- budget, the same for every method: NB201 C={s.channels} N={s.cells_per_stage}, {t.epochs} epochs x "
        f"{cfg.dataset.train_limit or 25000} images at batch {t.batch_size}, SGD lr {t.lr} cosine; few-shot splits after "
        "half the epochs (fresh cosine schedule after the split); gradient matching spends extra forward/backward "
        "passes on its split decisions (not counted in the epochs)",
        f"- ranking: the same {args.num_archs} archs (sample_seed {args.sample_seed}) for every run, scored on "
        f"{cfg.dataset.valid_limit or 25000} valid images, BN recalibrated; truth NAS-Bench-201 cifar10_test",
        "",
        "| method | seeds | Kendall tau | Spearman | P@top-5% | P@top-10% | true acc. of best-scored | found arch (evolution) | time per run |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method]

        def cell(key: str, digits: int = 3) -> str:
            values = [r[key] for r in rs]
            spread = statistics.pstdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"

        minutes = statistics.mean(r["search_seconds"] + r["scoring_seconds"] for r in rs) / 60
        lines.append(f"| {method} | {', '.join(str(r['seed']) for r in rs)} | {cell('kendall_tau')} | {cell('spearman')} | "
                     f"{cell('precision_at_top_5pct', 2)} | {cell('precision_at_top_10pct', 2)} | "
                     f"{cell('true_accuracy_of_best_scored', 2)} | {cell('found_true', 2)} | {minutes:.1f} min |")
    lines += ["", "Mean ± standard deviation over seeds.", "", f"![Kendall tau per method and seed]({stem.name}.png)", ""]
    Path(f"{stem}.md").write_text("\n".join(lines))
    plot(rows, f"{stem}.png")
    print("\n".join(lines))


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120)
    for ax, key, label in ((axes[0], "kendall_tau", "Kendall tau"), (axes[1], "true_accuracy_of_best_scored", "true acc. of best-scored arch")):
        for i, method in enumerate(methods):
            values = [r[key] for r in rows if r["method"] == method]
            ax.scatter([i] * len(values), values, color="C0", zorder=3)
            ax.hlines(statistics.mean(values), i - 0.25, i + 0.25, color="C3")
        ax.set_xticks(range(len(methods)), methods, rotation=15, fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
