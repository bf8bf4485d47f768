"""Once-for-All's progressive shrinking against one-shot uniform and the sandwich rule, at equal total epochs.

"Once-for-All: Train One Network and Specialize it for Efficient Deployment" (Cai et al., ICLR 2020) trains the
elastic supernet in phases (full network, then kernel, depth and width released in turn, distilled from the
full network); BigNAS ("BigNAS: Scaling Up Neural Architecture Search with Big Single-Stage Models", Yu et al.,
ECCV 2020) trains the whole space at once with the sandwich rule and in-place distillation; the one-shot baseline
samples one uniform path per step. Here all three train the same MobileNetV3 space on the same CIFAR-10 images for
the same total number of epochs (``--epochs-per-phase`` x 6: progressive shrinking's six phases), each with its own
recipe (the presets named in the report). Then, on the same archs:

* the smallest, a middle (d3 k5 e4) and the largest subnet, and ``--random-archs`` uniform ones, are scored on the
  CIFAR-10 test set with inherited weights after BatchNorm recalibration on ``--bn-images`` training images
  (OFA recalibrates on 2,000);
* the smallest, middle and largest are also trained standalone with ``nasframe train`` for the same epochs, on the
  same images, with the one-shot recipe's optimiser;
* latency is the prediction of the space's CPU latency table (``--latency-table``, batch 16, built by
  ``nasframe latency`` on this machine), so the Pareto fronts of the three methods share one plot.

Each step runs the ``nasframe`` command line in a process of its own (one thread), into ``--runs``; a finished step
is not run again, so the script can be stopped and rerun. Writes ``results/ofa_compare_cpu.{md,json,png}``.

    python scripts/ofa_compare.py                         # 1 epoch a phase: 6 epochs each, about an hour on 2 cores
    python scripts/ofa_compare.py --epochs-per-phase 4    # 24 epochs each
    python scripts/ofa_compare.py --report-only           # rewrite the report from the finished runs
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nasframe.markdown import markdown_table

#: the CPU-scale MobileNetV3 of the presets (configs/experiment/ofa_progressive_shrinking_cpu.yaml)
SPACE_SETTINGS = {"width_mult": 0.5, "stem_stride": 2, "head_channels": 256}
SPACE = [f"space.{key}={value}" for key, value in SPACE_SETTINGS.items()]
DATA = ["dataset=cifar10", "dataset.train_limit=4000", "dataset.valid_limit=500"]
#: the one-shot recipe (configs/experiment/mobilenet_pareto_cifar10_cpu.yaml) with OFA's label smoothing
ONE_SHOT_TRAINER = ["trainer.batch_size=64", "trainer.lr=0.05", "trainer.weight_decay=3e-5",
                    "trainer.decay_norm_and_bias=false", "trainer.nesterov=true", "trainer.label_smoothing=0.1"]
PHASES = ("full", "kernel", "depth_1", "depth_2", "expand_1", "expand_2")
#: the selection each training run ends with (the progressive-shrinking preset's)
SELECTION = ["selector.population_size=12", "selector.generations=4", "evaluator.batch_size=500",
             "evaluator.bn_recalibration_batches=2", "evaluator.bn_batch_size=128"]
METHODS = {
    "progressive_shrinking": ["+experiment=ofa_progressive_shrinking_cpu"],
    "uniform": ["space=mobilenet", "sampler=uniform", *ONE_SHOT_TRAINER, *SELECTION],
    # configs/experiment/mobilenet_pareto_cifar10_cpu.yaml's sampler (BigNAS)
    "sandwich": ["space=mobilenet", "sampler=sandwich", "sampler.num_random=2", "sampler.inplace_distillation=true",
                 *ONE_SHOT_TRAINER, *SELECTION],
}
PRESETS = {
    "progressive_shrinking": "ofa_progressive_shrinking_cpu: 6 phases (full, kernel, depth x2, expand x2), paths per "
                             "step 1, 1, 2, 2, 4, 4, distilled from the full network (kd 1.0), channels sorted before "
                             "each expand phase, each phase's learning rate (OFA's)",
    "uniform": "one uniform path per step, lr 0.05 cosine",
    "sandwich": "sandwich rule (largest, smallest, 2 random per step) with in-place distillation, lr 0.05 cosine "
                "(BigNAS)",
}


def subnet_archs(depths=(2, 3, 4), kernels=(3, 5, 7), expands=("3", "4", "6")) -> dict[str, str]:
    """Native strings of the smallest, a middle and the largest subnet (5 stages)."""
    def uniform_arch(d: int, k: int, e: str) -> str:
        return f"d{','.join([str(d)] * 5)}|" + "|".join([",".join([f"k{k}e{e}"] * d)] * 5)

    return {"smallest": uniform_arch(depths[0], kernels[0], expands[0]),
            "middle": uniform_arch(depths[1], kernels[1], expands[1]),
            "largest": uniform_arch(depths[2], kernels[2], expands[2])}


def nasframe(command: str, overrides: list[str], run_dir: Path, log: Path) -> float:
    """Run ``nasframe <command> <overrides>`` into ``run_dir`` (one thread); returns the wall-clock seconds."""
    started = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "nasframe.cli", command, *overrides, f"hydra.run.dir={run_dir}", "threads=1",
           "trainer.progress=false"]
    print("$", " ".join(cmd), flush=True)
    with log.open("w") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(cmd)}; its log: {log}")
    return time.perf_counter() - started


def train_supernets(args, epochs: int) -> dict[str, float]:
    """Each method's supernet, trained to ``epochs`` (stopped before selection); wall-clock seconds per method."""
    seconds = {}
    for method, overrides in METHODS.items():
        run_dir = args.runs / method
        done = run_dir / "trained.json"
        if done.is_file():
            seconds[method] = json.loads(done.read_text())["seconds"]
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        stop = [f"trainer.stop_after_epoch={epochs}", "resume=auto"]
        if method == "progressive_shrinking":
            command = [*ps_overrides(args, epochs), *stop]
        else:
            command = [*overrides, *SPACE, *DATA, f"trainer.epochs={epochs}", f"seed={args.seed}", *stop]
        seconds[method] = nasframe("search", command, run_dir, run_dir / "train.log")
        done.write_text(json.dumps({"seconds": seconds[method]}) + "\n")
    return seconds


def ps_overrides(args, epochs: int) -> list[str]:
    """The progressive-shrinking run's command line (the same for training and for the searches that resume it)."""
    return [*METHODS["progressive_shrinking"], *SPACE, *DATA, f"trainer.epochs={epochs}", f"seed={args.seed}",
            *[f"sampler.phases.{k}.epochs={args.epochs_per_phase}" for k in range(len(PHASES))]]


#: the evolutionary search both evaluators drive (the same selector, seed and number of queries)
SEARCH = ["selector.population_size=24", "selector.generations=10", "selector.parents=8"]


def search_trained(args, epochs: int, run: bool = True) -> dict[str, dict]:
    """Once-for-All's search on the progressive-shrinking supernet, with the accuracy predictor (fit on
    ``--predictor-archs`` measured subnets) and with measured accuracy, the same evolutionary search: the predictor's
    held-out rank correlation, the selection's seconds and the picks' test accuracy."""
    rows = {}
    for evaluator, extra in (("predictor", ["evaluator=predictor", f"evaluator.num_measured={args.predictor_archs}"]),
                             ("measured", [])):
        run_dir = args.runs / f"search_{evaluator}"
        outcome = run_dir / "outcome.json"
        if run and not outcome.is_file():
            run_dir.mkdir(parents=True, exist_ok=True)
            nasframe("search", [*ps_overrides(args, epochs), *SEARCH, *extra,
                                f"resume={args.runs / 'progressive_shrinking'}"], run_dir, run_dir / "search.log")
        result = json.loads(outcome.read_text())
        rows[evaluator] = {"arch": result["arch"], "test_accuracy": result["test_accuracy"],
                           "archs_evaluated": result["archs_evaluated"], "select_seconds": result["seconds"]["select"],
                           "predictor": result.get("predictor")}
    return rows


def train_standalone(args, epochs: int, run: bool = True) -> dict[str, dict]:
    """The smallest, middle and largest subnet trained from scratch with ``nasframe train`` for ``epochs``."""
    rows = {}
    for label, native in subnet_archs().items():
        run_dir = args.runs / f"standalone_{label}"
        outcome = run_dir / "outcome.json"
        if run and not outcome.is_file():
            run_dir.mkdir(parents=True, exist_ok=True)
            overrides = ["space=mobilenet", *SPACE, *DATA, f"arch='{native}'", f"trainer.epochs={epochs}",
                         *ONE_SHOT_TRAINER, f"seed={args.seed}"]
            seconds = nasframe("train", overrides, run_dir, run_dir / "train.log")
            (run_dir / "seconds.json").write_text(json.dumps({"seconds": seconds}) + "\n")
        result = json.loads(outcome.read_text())
        seconds = json.loads((run_dir / "seconds.json").read_text())["seconds"]
        rows[label] = {"native": native, "test_accuracy": result["final_test_accuracy"], "params": result["params"],
                       "seconds": seconds}
    return rows


def evaluate(args, method: str, archs: list[str]) -> list[dict]:
    """Test accuracy (inherited weights, BN recalibrated) and predicted latency of ``archs`` in ``method``'s
    supernet; cached in the run directory."""
    from nasframe.rank import load_run_config
    from nasframe.search import build_supernet, make_evaluator, setup_search
    from nasframe.selection.constraints import load_latency_budget
    from nasframe.training.checkpoint import load_checkpoint

    cache = args.runs / method / f"scores_bn{args.bn_images}.json"
    scores = json.loads(cache.read_text()) if cache.is_file() else {}
    todo = [a for a in archs if a not in scores]
    if todo:
        torch.set_num_threads(args.threads)
        cfg = load_run_config(args.runs / method)
        cfg.resume, cfg.threads = None, args.threads
        cfg.evaluator.bn_batch_size = 125
        cfg.evaluator.bn_recalibration_batches = args.bn_images // 125
        setup = setup_search(cfg)
        supernet = build_supernet(setup)
        supernet.load_state_dict(load_checkpoint(args.runs / method / "checkpoint.pt", map_location="cpu")["model"])
        evaluator = make_evaluator(setup, supernet, held_out="test")
        latency = load_latency_budget(setup.space, args.latency_table, None)
        for native in todo:
            arch = setup.space.parse(native)
            scores[native] = {"test_accuracy": evaluator.accuracy_of(arch), "latency_ms": latency.latency(arch),
                              "params": setup.space.count_params(arch)}
            cache.write_text(json.dumps(scores, indent=1) + "\n")
            print(f"{method:<22} {scores[native]['test_accuracy']:6.2f}%  {scores[native]['latency_ms']:7.2f} ms  "
                  f"{native}", flush=True)
    return [{"native": a, **scores[a]} for a in archs]


def pareto_front(points: list[dict]) -> list[dict]:
    """The points no other point beats on both latency (lower) and accuracy (higher), by latency."""
    ordered = sorted(points, key=lambda p: (p["latency_ms"], -p["test_accuracy"]))
    front, best = [], -np.inf
    for point in ordered:
        if point["test_accuracy"] > best:
            front.append(point)
            best = point["test_accuracy"]
    return front


def random_archs(count: int, seed: int) -> list[str]:
    from nasframe.core.space import DataSpec
    from search_spaces.mobilenet import MobileNetSpace

    space = MobileNetSpace(DataSpec(3, (32, 32), 10), **SPACE_SETTINGS)
    rng = np.random.default_rng(seed)
    return [space.format(space.sample(rng)) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs-per-phase", type=int, default=1)
    parser.add_argument("--random-archs", type=int, default=20)
    parser.add_argument("--predictor-archs", type=int, default=100, help="subnets measured to fit the predictor")
    parser.add_argument("--bn-images", type=int, default=2000, help="BN recalibration images (a multiple of 125)")
    parser.add_argument("--latency-table", type=Path,
                        default=Path("results/latency_mobilenet_cpu_batch16/latency_table_mobilenet_cpu.json"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=Path, default=Path("runs/ofa_compare"))
    parser.add_argument("--out", type=Path, default=Path("results/ofa_compare_cpu"))
    parser.add_argument("--report-only", action="store_true", help="no training: report the finished runs")
    args = parser.parse_args()
    epochs = args.epochs_per_phase * len(PHASES)
    if not args.report_only:
        train_supernets(args, epochs)
    fixed = subnet_archs()
    archs = [*fixed.values(), *random_archs(args.random_archs, args.seed)]
    result = {
        "meta": {
            "command": "python " + " ".join(sys.argv),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
                       f"{args.threads} torch thread per process",
            "python": platform.python_version(), "torch": torch.__version__,
            "epochs": epochs, "epochs_per_phase": args.epochs_per_phase, "bn_images": args.bn_images,
            "predictor_archs": args.predictor_archs,
            "latency_table": str(args.latency_table), "seed": args.seed, "presets": PRESETS,
            "overrides": {m: [*o, *SPACE, *DATA] for m, o in METHODS.items()},
        },
        "training_seconds": {m: json.loads((args.runs / m / "outcome.json").read_text())["seconds"]["train"]
                             for m in METHODS},
        "standalone": train_standalone(args, epochs, run=not args.report_only),
        "methods": {m: evaluate(args, m, archs) for m in METHODS},
        "search": search_trained(args, epochs, run=not args.report_only),
    }
    for method, points in result["methods"].items():
        result.setdefault("fronts", {})[method] = [p["native"] for p in pareto_front(points)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(render(result, fixed))
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out}.md, .json and .png")


def render(result: dict, fixed: dict[str, str]) -> str:
    meta = result["meta"]
    by_native = {m: {p["native"]: p for p in points} for m, points in result["methods"].items()}
    lines = [
        "# Once-for-All: progressive shrinking vs one-shot uniform vs the sandwich rule (CPU budget)",
        "",
        f"- machine: {meta['machine']}; python {meta['python']}, torch {meta['torch']}",
        f"- command: `{meta['command']}` ({meta['date']})",
        f"- budget: {meta['epochs']} epochs for every method ({meta['epochs_per_phase']} per progressive-shrinking "
        "phase) on 4,000 CIFAR-10 training images (the search split), batch 64; seed "
        f"{meta['seed']}; space: MobileNetV3 elastic, width 0.5, stem stride 2, head 256",
        "- scores: CIFAR-10 test set (10,000 images), inherited weights, BatchNorm recalibrated on "
        f"{meta['bn_images']:,} training images; latency predicted by `{meta['latency_table']}` (this CPU, batch 16)",
        "- standalone: the same subnet trained from scratch with `nasframe train` for the same epochs and images, "
        "one-shot recipe (lr 0.05 cosine, wd 3e-5 not on BN and biases, label smoothing 0.1)",
        "",
        "Recipes:",
        "",
        *[f"- {m}: {text}" for m, text in meta["presets"].items()],
        "",
        "## Smallest, middle and largest subnet",
        "",
    ]
    headers = ["subnet", "params", "latency (ms)", *[f"{m} (%)" for m in result["methods"]], "standalone (%)"]
    rows = []
    for label, native in fixed.items():
        first = next(iter(by_native.values()))[native]
        rows.append([label, f"{first['params']:,}", f"{first['latency_ms']:.2f}",
                     *[f"{by_native[m][native]['test_accuracy']:.2f}" for m in result["methods"]],
                     f"{result['standalone'][label]['test_accuracy']:.2f}"])
    lines += [markdown_table(headers, rows, "lrr" + "r" * (len(headers) - 3)), ""]
    lines += ["## All scored subnets", ""]
    summary_rows = []
    for method, points in result["methods"].items():
        accs = np.array([p["test_accuracy"] for p in points])
        front = result["fronts"][method]
        summary_rows.append([method, f"{accs.mean():.2f} ± {accs.std():.2f}", f"{accs.max():.2f}", str(len(front)),
                             f"{result['training_seconds'][method] / 60:.1f}"])
    lines += [markdown_table(["method", "test accuracy over the archs (mean ± std)", "best", "Pareto points",
                              "training (min)"], summary_rows, "lrrrr"), ""]
    lines += [f"Archs: the three above and {len(next(iter(result['methods'].values()))) - 3} uniform samples "
              f"(seed {meta['seed']}); the plot (same name, `.png`) shows every method's points and Pareto front.", ""]
    search = result["search"]
    predictor = (search["predictor"].get("predictor") or {}).get("fit", {})
    lines += ["## Search on the progressive-shrinking supernet: accuracy predictor vs measured accuracy", "",
              f"The same evolutionary search (`{' '.join(SEARCH)}`, seed {meta['seed']}) from the trained checkpoint "
              "(`resume=`), scored on the valid split; the pick's accuracy is measured on the test set either way.", ""]
    rows = [[name, row["arch"], f"{row['test_accuracy']:.2f}", str(row["archs_evaluated"]),
             f"{row['select_seconds']:.1f}"] for name, row in search.items()]
    lines += [markdown_table(["evaluator", "pick", "test accuracy (%)", "archs scored", "selection (s)"], rows,
                             "llrrr"), ""]
    speedup = search["measured"]["select_seconds"] / max(search["predictor"]["select_seconds"], 1e-9)
    lines += [f"Selection speed-up with the predictor: {speedup:.2f}x (its time includes measuring the "
              f"{meta.get('predictor_archs', '?')} subnets it is fit on). "
              + (f"Predictor's held-out Kendall tau against measured accuracy: {predictor['kendall_tau']:.3f} on "
                 f"{predictor['held_out']} of the {predictor['measured']} measured subnets (measuring took "
                 f"{predictor['measure_seconds']:.0f} s)." if "kendall_tau" in predictor else
                 "The run's outcome.json records no held-out tau."), ""]
    lines += ["## Cost of the elastic step", "",
              "All three runs train with the active-slice step (`trainer.active_slices=true`: only the slices of each "
              "weight that ran are updated). Its cost against the standalone subnet, median of per-round ratios "
              "[interquartile range], from `scripts/bench_overhead.py` (width 1.0 space, 1 thread):", ""]
    for name in ("overhead_mobilenet_cpu", "overhead_mobilenet_cpu_batch64"):
        path = Path("results") / f"{name}.json"
        if path.is_file():
            bench = json.loads(path.read_text())
            for row in bench["rows"]:
                t = row["train_ms"]["supernet"]
                lines.append(f"- {row['arch']}, batch {bench['meta']['setting'].split('batch ')[1].split(',')[0]}: "
                             f"{t['ratio']:.3f} [{t['ratio_q1']:.3f}, {t['ratio_q3']:.3f}] (`results/{name}.md`)")
    lines.append("")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (method, points), color in zip(result["methods"].items(), ("C0", "C1", "C2")):
        ax.scatter([p["latency_ms"] for p in points], [p["test_accuracy"] for p in points], s=14, alpha=0.5,
                   color=color)
        front = pareto_front(points)
        ax.plot([p["latency_ms"] for p in front], [p["test_accuracy"] for p in front], "-o", ms=4, color=color,
                label=method.replace("_", " "))
    fixed = {p["native"]: p for p in next(iter(result["methods"].values()))}
    ax.scatter([fixed[s["native"]]["latency_ms"] for s in result["standalone"].values()],
               [s["test_accuracy"] for s in result["standalone"].values()], marker="*", s=120, color="k",
               label="standalone (same epochs)")
    ax.set_xlabel("predicted latency on this CPU, batch 16 (ms)")
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    ax.set_title(f"MobileNetV3 elastic supernet, {result['meta']['epochs']} epochs each")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
