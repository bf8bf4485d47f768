"""Ranking comparison of path samplers on NAS-Bench-201 / CIFAR-10 at one budget.

For each method and seed: ``nasframe search +experiment=<preset> sampler=...`` (same epochs and batch size for
all, so the same number of training steps), then ``nasframe rank`` on the same arch sample (``--sample-seed``)
against the NAS-Bench-201 table. Writes ``results/sampler_comparison_<preset>.{md,json,png}`` after every finished
run, so a long comparison can span several sessions: a (method, seed) row already in that committed JSON, or in
``row.json`` of its run directory, is not run again, and the report lists the rows still to run. A run directory
with a training checkpoint continues from it.

    python scripts/compare_samplers.py                                  # reduced CPU budget, seeds 0 1
    python scripts/compare_samplers.py --experiment nb201_cifar10_cpu --num-archs 200   # the ranking budget
    python scripts/compare_samplers.py --experiment nb201_cifar10_gpu --num-archs 0 --seeds 0 1 2
    python scripts/compare_samplers.py --experiment nb201_cifar10_cpu --num-archs 200 --report-only  # no training
    # one-shot vs few-shot with the shared and with the per-part budget (parts as 2 parallel joblib jobs):
    python scripts/compare_samplers.py --methods uniform fewshot-exhaustive fewshot-exhaustive-per-part \
        --report fewshot_per_part --reuse results/sampler_comparison_nb201_cifar10_compare_cpu.json

Methods whose search launches jobs (few-shot ``sampler.budget=per_part``) run through the ``nasframe search``
command line, in a process of their own; the others run in this process.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from nasframe.benchmarks.nb201 import NB201Benchmark
from nasframe.cli import compose_config
from nasframe.config import RankConfig
from nasframe.markdown import markdown_table
from nasframe.rank import run_rank

from experiment_steps import search_to_the_end  # scripts/ is on the path when a script runs

METHODS = {
    "uniform": ["sampler=uniform"],
    "pada": ["sampler=pada"],
    "fairnas": ["sampler=fairnas"],  # same epochs: m = 5 paths per step, 5x uniform's forward/backward passes
    "fewshot-exhaustive": ["sampler=fewshot", "sampler.split=exhaustive", "sampler.choice=edge_1_0"],
    "fewshot-gradient": ["sampler=fewshot", "sampler.split=gradient", "sampler.max_subnets=4", "sampler.grad_batches=2"],
    # the paper's budget: after the one-shot half, each of the 5 sub-supernets trains all the remaining epochs, as
    # its own job (2 joblib processes of 1 thread at a time on 2 cores)
    "fewshot-exhaustive-per-part": ["sampler=fewshot", "sampler.split=exhaustive", "sampler.choice=edge_1_0",
                                    "sampler.budget=per_part", "threads=1"],
}
#: what the methods that launch jobs add to their command line: the launcher of their jobs
LAUNCHERS = {"fewshot-exhaustive-per-part": ["hydra/launcher=local", "hydra.launcher.n_jobs=2"]}
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
    parser.add_argument("--report-only", action="store_true", help="write the report of the finished rows; run nothing")
    parser.add_argument("--report", default="sampler_comparison",
                        help="the report's name: results/<report>_<experiment>.{md,json,png}")
    parser.add_argument("--reuse", type=Path, nargs="*", default=[],
                        help="earlier reports whose rows (same budget, same archs) this comparison takes as they are")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (after --)")
    args = parser.parse_args()
    benchmark = NB201Benchmark()
    stem = args.out / f"{args.report}_{args.experiment}"
    budget = [f"+experiment={args.experiment}", *args.overrides]
    defaults = shared_config(compose_config("search", budget[:1]))  # the preset without this invocation's overrides
    budget_cfg = compose_config("search", budget)  # what the rows share; the report's settings
    shared = shared_config(budget_cfg)
    wanted = [(method, seed) for method in args.methods for seed in args.seeds]
    rows = {key: row for path in args.reuse for key, row in finished_rows(path, args, shared, defaults).items()
            if key in wanted}
    rows.update(finished_rows(Path(f"{stem}.json"), args, shared, defaults))
    cfg = None
    for method, seed in wanted:
        run_dir = args.runs / args.experiment / f"{method}-seed{seed}"
        cfg = compose_config("search", [*budget, *METHODS[method], f"seed={seed}"], resume=run_dir)
        done = run_dir / "row.json"
        if (method, seed) in rows:
            continue
        if done.is_file():  # finished by an earlier invocation whose report was not written
            rows[method, seed] = json.loads(done.read_text())
            write(args, stem, rows, wanted, budget_cfg)
            continue
        if args.report_only:
            continue
        if method in LAUNCHERS:
            native, search_seconds, extra = search_through_cli([*budget, *METHODS[method], f"seed={seed}",
                                                                *LAUNCHERS[method]], run_dir)
        else:
            outcome, search_seconds = search_to_the_end(cfg, run_dir, resume_flag="")  # resumes by itself
            native, extra = outcome.native, {}
        rank_cfg = OmegaConf.structured(RankConfig)
        rank_cfg.run, rank_cfg.benchmark = str(run_dir), {"name": "nb201"}
        rank_cfg.ranking.num_archs, rank_cfg.ranking.sample_seed = args.num_archs, args.sample_seed
        rank_cfg.evaluator, rank_cfg.device, rank_cfg.threads = cfg.evaluator, cfg.device, cfg.threads
        report, _ = run_rank(rank_cfg)
        row = {"method": method, "seed": seed, **{m: report.metrics[m] for m in METRICS},
               "found_arch": native, "found_true": benchmark.metric(native, "cifar10_test"), **extra,
               "search_seconds": search_seconds, "scoring_seconds": report.seconds,
               "num_archs": args.num_archs, "sample_seed": args.sample_seed,
               "baselines": trivial_baselines(report.extra.get("baselines", {}))}
        rows[method, seed] = row
        done.write_text(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        write(args, stem, rows, wanted, budget_cfg)
    if cfg is not None:
        write(args, stem, rows, wanted, budget_cfg)


def search_through_cli(overrides: list[str], run_dir: Path) -> tuple[str, float, dict]:
    """``nasframe search <overrides>`` into ``run_dir`` in its own process (a rerun continues it: resume=auto);
    returns the found arch, the wall-clock seconds and, for a run that launched part jobs, their wall time."""
    import subprocess
    import time

    started = time.perf_counter()
    command = [sys.executable, "-m", "nasframe.cli", "search", *overrides, "resume=auto", f"hydra.run.dir={run_dir}"]
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    native = json.loads((run_dir / "outcome.json").read_text())["arch"]  # the native string
    parts = run_dir / "parts" / "parts.json"
    extra = {}
    if parts.is_file():
        launches = json.loads(parts.read_text())["launches"]
        extra = {"parts": launches[-1]["parts"], "parts_wall_seconds": sum(launch["wall_seconds"] for launch in launches)}
    return native, seconds, extra


def trivial_baselines(found: dict) -> dict:
    """The ranking's trivial baselines on the same archs (#params, FLOPs, a random ranking's expectation)."""
    return {name: {m: metrics[m] for m in METRICS if m in metrics} for name, metrics in found.items()}


def backfill_baselines(rows: dict, args) -> None:
    """Rows written before rows carried their baselines: read them from the run's ranking.json when it is kept."""
    for (method, seed), row in rows.items():
        ranking = args.runs / args.experiment / f"{method}-seed{seed}" / "ranking" / "ranking.json"
        if "baselines" not in row and ranking.is_file():
            row["baselines"] = trivial_baselines(json.loads(ranking.read_text()).get("baselines", {}))


#: config keys that differ between the rows of one comparison
ROW_KEYS = ("sampler", "seed", "resume")


def shared_config(cfg) -> dict:
    """The run config without what differs between the comparison's rows."""
    return _without_row_keys(OmegaConf.to_container(cfg, resolve=True))


def _without_row_keys(config: dict) -> dict:
    return {key: value for key, value in config.items() if key not in ROW_KEYS}


def finished_rows(report_json: Path, args, budget: dict, defaults: dict | None = None) -> dict[tuple[str, int], dict]:
    """Rows of an earlier invocation's report, when it trained with the same budget and ranked the same sample.

    A config key that the report predates (a setting added to nasframe since) does not change the budget while
    this invocation leaves it at its default (``defaults``, the preset's config)."""
    if not report_json.is_file():
        return {}
    report = json.loads(report_json.read_text())
    stored = _without_row_keys(report["meta"]["config"])
    if not same_budget(stored, budget, defaults or {}):
        print(f"{report_json} was made with another config; its rows are not reused (the report is rewritten)")
        return {}
    return {(r["method"], r["seed"]): r for r in report["rows"]
            if r.get("num_archs", args.num_archs) == args.num_archs and r.get("sample_seed", args.sample_seed) == args.sample_seed}


def same_budget(stored: dict, current: dict, defaults: dict) -> bool:
    """``stored`` and ``current`` configs are equal, up to keys missing from ``stored`` that ``current`` holds at
    their default."""
    for key in stored.keys() | current.keys():
        if key not in current:
            return False
        if key not in stored:
            if not isinstance(defaults, dict) or key not in defaults or current[key] != defaults[key]:
                return False
        elif isinstance(stored[key], dict) and isinstance(current[key], dict):
            if not same_budget(stored[key], current[key], defaults.get(key, {}) if isinstance(defaults, dict) else {}):
                return False
        elif stored[key] != current[key]:
            return False
    return True


def write(args, stem: Path, found: dict[tuple[str, int], dict], wanted: list[tuple[str, int]], cfg) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    backfill_baselines(found, args)
    rows = [found[key] for key in sorted(found, key=lambda k: (list(METHODS).index(k[0]), k[1]))]
    missing = [f"{method} seed {seed}" for method, seed in wanted if (method, seed) not in found]
    command = "python " + " ".join(a for a in sys.argv if a != "--report-only")  # the command that runs the rows
    meta = {"command": command, "python": platform.python_version(), "torch": torch.__version__,
            "threads": cfg.threads, "config": shared_config(cfg), "still_to_run": missing}
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    t, s = cfg.trainer, cfg.space
    lines = [
        f"# Sampler comparison on NAS-Bench-201 / {cfg.dataset.name} ({args.experiment})",
        "",
        f"- command: `{meta['command']}`; python {meta['python']}, torch {meta['torch']}, {meta['threads']} threads (CPU)",
        f"- budget, the same for every method: NB201 C={s.channels} N={s.cells_per_stage}, {t.epochs} epochs x "
        f"{_images(cfg.dataset, 'train_limit')} training images at batch {t.batch_size}, SGD lr {t.lr} cosine; few-shot splits after "
        "half the epochs (fresh cosine schedule after the split); gradient matching spends extra forward/backward "
        "passes on its split decisions (not counted in the epochs)",
        f"- ranking: the same {args.num_archs} archs (sample_seed {args.sample_seed}) for every run, scored on "
        f"{_images(cfg.dataset, 'valid_limit')} valid images, BN recalibrated; truth NAS-Bench-201 cifar10_test",
        *per_part_budget(rows, t.epochs),
        "",
    ]
    table = []
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method]

        def cell(key: str, digits: int = 3) -> str:
            values = [r[key] for r in rs]
            if len(values) == 1:  # one seed: no spread to state
                return f"{values[0]:.{digits}f}"
            return f"{statistics.mean(values):.{digits}f} ± {statistics.pstdev(values):.{digits}f}"

        minutes = statistics.mean(r["search_seconds"] + r["scoring_seconds"] for r in rs) / 60
        table.append([method, ", ".join(str(r["seed"]) for r in rs), cell("kendall_tau"), cell("spearman"),
                      cell("precision_at_top_5pct", 2), cell("precision_at_top_10pct", 2),
                      cell("true_accuracy_of_best_scored", 2), cell("found_true", 2), f"{minutes:.1f} min"])
    baselines = next((r["baselines"] for r in rows if r.get("baselines")), {})
    for name, metrics in baselines.items():  # the same archs for every row: one value, no seeds
        table.append([f"baseline: {name}", "-", *(f"{metrics[m]:.{d}f}" if m in metrics else None for m, d in (
            ("kendall_tau", 3), ("spearman", 3), ("precision_at_top_5pct", 2), ("precision_at_top_10pct", 2),
            ("true_accuracy_of_best_scored", 2))), None, None])
    largest = benchmark_largest_cell()
    if largest is not None:
        table.append(["baseline: largest cell (every edge nor_conv_3x3)", "-", None, None, None, None, None,
                      f"{largest:.2f}", None])
    lines.append(markdown_table(
        ["method", "seeds", "Kendall tau", "Spearman", "P@top-5%", "P@top-10%", "true acc. of best-scored",
         "found arch (evolution)", "time per run"], table, "llrrrrrrr"))
    lines += ["", "Mean ± standard deviation over seeds (a single value where one seed has run)."]
    for r in rows:
        if "parts_wall_seconds" in r:
            lines.append(f"- {r['method']} seed {r['seed']}: its {r['parts']} part jobs took "
                         f"{r['parts_wall_seconds'] / 60:.1f} min of wall time (2 at a time, 1 thread each), "
                         f"of {r['search_seconds'] / 60:.1f} min for the whole search")
    if missing:
        lines += ["", f"Still to run (the comparison resumes with the same command): {', '.join(missing)}."]
    lines += ["", f"![Kendall tau per method and seed]({stem.name}.png)", ""]
    Path(f"{stem}.md").write_text("\n".join(lines))
    plot(rows, f"{stem}.png")
    print("\n".join(lines))


def per_part_budget(rows: list[dict], epochs: int) -> list[str]:
    """The report line that says what the per-part few-shot rows trained beyond the shared budget."""
    parts = next((r["parts"] for r in rows if "parts" in r), None)
    if parts is None:
        return []
    split = round(0.5 * epochs)
    return [f"- except the `-per-part` rows: the paper's budget (Zhao et al.), {split} one-shot epochs, then each of the "
            f"{parts} sub-supernets trains the other {epochs - split} epochs from the one-shot weights as its own job: "
            f"{split + parts * (epochs - split)} epochs of training steps in all against {epochs}; these rows run at "
            "1 thread per process (the parts 2 at a time), the others at the preset's threads"]


#: NB201's largest cell: every edge the 3x3 convolution, the most parameters and FLOPs
LARGEST_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def benchmark_largest_cell() -> float | None:
    """The largest cell's true CIFAR-10 test accuracy (the found-arch baseline); None without the table."""
    try:
        return NB201Benchmark().metric(LARGEST_CELL, "cifar10_test")
    except Exception:  # noqa: BLE001 - the table is optional for the report
        return None


def _images(dataset, limit_key: str) -> str:
    """How many images of a split the runs use: the configured limit, or all of the split."""
    limit = dataset.get(limit_key) or 0
    return f"{limit:,}" if limit else "all"


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
