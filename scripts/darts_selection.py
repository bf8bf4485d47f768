"""DARTS on NAS-Bench-201: magnitude vs perturbation selection on the same supernet.

For each seed: train a DARTS (first order) supernet with ``+experiment=<preset>`` (resuming its checkpoint if
an earlier invocation stopped), read an arch off it with the magnitude rule (argmax alpha, "DARTS"), then with
perturbation selection ("Rethinking Architecture Selection in Differentiable NAS": mask each op, keep the one
whose removal hurts most, fine-tune between decisions) on the same weights, and look both archs up in the
NAS-Bench-201 table (cifar10_test, 200-epoch accuracy). Magnitude runs first: perturbation selection fine-tunes
the supernet. Each finished seed leaves ``row.json`` in its run directory and is not run again.

    python scripts/darts_selection.py                      # nb201_darts_cifar10_cpu, seeds 0 1
    python scripts/darts_selection.py --seeds 0 1 2 --experiment nb201_darts_cifar10_cpu
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
from nasframe.config import register_configs
from nasframe.markdown import markdown_table
from nasframe.search import make_evaluator, selector_inputs, setup_search, train_supernet
from nasframe.selection.magnitude import MagnitudeSelector
from nasframe.selection.perturbation import PerturbationSelector

#: the papers' NAS-Bench-201 CIFAR-10 test accuracies (DARTS-PT, Table 1): DARTS 54.30, DARTS-PT 88.11
ANCHORS = {"magnitude": "54.30 (NAS-Bench-201 paper, DARTS-V1)", "perturbation": "about 88 (DARTS-PT paper)"}


def run_seed(experiment: str, seed: int, run_dir: Path, benchmark: NB201Benchmark, overrides: list[str]) -> dict:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("search", overrides=[f"+experiment={experiment}", f"seed={seed}", *overrides])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    setup = setup_search(cfg)
    if (run_dir / "checkpoint.pt").is_file():
        setup.resume_from = run_dir / "checkpoint.pt"
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tensorboard"))
    start = time.perf_counter()
    trainer = train_supernet(setup, run_dir, writer)
    train_seconds = time.perf_counter() - start
    space = setup.space
    evaluator = make_evaluator(setup, trainer.supernet)
    row: dict = {"seed": seed, "train_seconds": train_seconds, "epochs": cfg.trainer.epochs}
    start = time.perf_counter()
    inputs = selector_inputs(trainer, evaluator, seed)
    magnitude = MagnitudeSelector().select(space, evaluator, seed=seed, inputs=inputs)
    row["magnitude_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    perturbation = PerturbationSelector(**{k: v for k, v in cfg.selector.items() if k != "name"}).select(
        space, evaluator, seed=seed, inputs=inputs
    )
    row["perturbation_seconds"] = time.perf_counter() - start
    for label, result in (("magnitude", magnitude), ("perturbation", perturbation)):
        native = space.format(result.arch)
        row[label] = {
            "arch": native,
            "true_cifar10_test": benchmark.metric(native, "cifar10_test"),
            "supernet_valid_accuracy": result.score,
            "skip_connect_edges": sum(o == "skip_connect" for o in result.arch.values()),
            "parametric_edges": sum(o.startswith("nor_conv") for o in result.arch.values()),
        }
        (run_dir / f"selection_{label}.json").write_text(result.to_json(space) + "\n")
        writer.add_text(f"select/{label}", native)
    writer.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="nb201_darts_cifar10_cpu")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--runs", type=Path, default=Path("runs/darts_selection"))
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. trainer.epochs=2")
    args = parser.parse_args()
    register_configs()
    benchmark = NB201Benchmark()
    rows = []
    for seed in args.seeds:
        run_dir = args.runs / args.experiment / f"seed{seed}"
        done = run_dir / "row.json"
        if done.is_file():
            rows.append(json.loads(done.read_text()))
            continue
        row = run_seed(args.experiment, seed, run_dir, benchmark, args.overrides)
        done.write_text(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        rows.append(row)
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("search", overrides=[f"+experiment={args.experiment}", *args.overrides])
    write(args, rows, cfg)


def write(args: argparse.Namespace, rows: list[dict], cfg) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"darts_selection_{args.experiment}"
    meta = {"command": "python " + " ".join(sys.argv), "python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
            "config": OmegaConf.to_container(cfg, resolve=True)}
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    t, s, sel = cfg.trainer, cfg.space, cfg.selector
    lines = [
        f"# DARTS on NAS-Bench-201 / CIFAR-10: magnitude vs perturbation selection ({args.experiment})",
        "",
        f"- command: `{meta['command']}`; python {meta['python']}, torch {meta['torch']}, {meta['threads']} threads (CPU)",
        f"- supernet: NB201 C={s.channels} N={s.cells_per_stage}, non-affine BN; DARTS first order, {t.epochs} epochs "
        f"on {cfg.dataset.train_limit} train images (weights: SGD lr {t.lr} cosine to {t.min_lr}, batch {t.batch_size}) "
        f"and {cfg.dataset.valid_limit} valid images (alpha: Adam lr {cfg.sampler.arch_lr})",
        f"- perturbation: accuracy measured on {sel.eval_examples} valid images with batch-statistics BN, "
        f"{sel.tune_steps} fine-tuning steps (lr {t.lr / 10}) after each decision, random edge order (seeded)",
        "- truth: NAS-Bench-201 cifar10_test (200-epoch training, mean over seeds); optimum 94.37",
        "",
        markdown_table(
            ["seed", "selector", "arch", "true test acc.", "skip edges", "conv edges", "time"],
            [[r["seed"], label, f"`{r[label]['arch']}`", f"{r[label]['true_cifar10_test']:.2f}",
              r[label]["skip_connect_edges"], r[label]["parametric_edges"], f"{r[f'{label}_seconds']:.0f} s"]
             for r in rows for label in ("magnitude", "perturbation")],
            "rllrrrr"),
        "",
    ]
    means = []
    for label in ("magnitude", "perturbation"):
        values = [r[label]["true_cifar10_test"] for r in rows]
        spread = statistics.pstdev(values) if len(values) > 1 else 0.0
        means.append([label, f"{statistics.mean(values):.2f} ± {spread:.2f}", ANCHORS[label]])
    lines.append(markdown_table(["selector", "mean true test acc. over seeds", "paper (C=16 N=5, 50 epochs)"], means, "lrr"))
    train_minutes = statistics.mean(r["train_seconds"] for r in rows) / 60
    lines += ["", f"Supernet training: {train_minutes:.1f} min per seed (mean).", ""]
    Path(f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
