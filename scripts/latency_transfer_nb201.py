"""Learning curves of the latency models on NAS-Bench-201 x 13 devices: accuracy against the number of measured archs.

Data: ``$NASFRAME_DATA/nb201/latency_ms.csv``, the measured latency of all 15,625 NAS-Bench-201 archs on 13 devices
("HW-NAS-Bench: Hardware-Aware Neural Architecture Search Benchmark", Li et al., ICLR 2021, and the HELP release).

Protocol, for every device column (the *target*) and every model of :data:`nasframe.hardware.models.MODELS`:

* ``N`` archs (``--sizes``) are drawn uniformly without replacement with seed ``s`` (``--seeds``); the same draw
  is given to every model (paired comparison). Their target latencies are the only target data a model sees.
* the model is fitted on them; its hyper-parameters are fixed in advance or chosen by cross-validation on these
  ``N`` archs only (interaction: number of trees; transfer: ridge penalty), never on the evaluation archs;
* metrics (within ±10 %, Kendall tau, MAPE, RMSE) on ALL the other ``15,625 - N`` archs;
* the transfer model is evaluated leave-one-device-out: its backbone is pre-trained (once per target, seed 0)
  on the other 12 devices' columns, all archs (a source device's table is fully known in HELP's setting); the
  target column never enters the pre-training.

Also reported for context (not a prediction result): an in-sample ceiling, scikit-learn's
``HistGradientBoostingRegressor`` fitted on all archs' 0/1 terms and scored on the same archs: what a flexible
model of the arch alone reaches when it may memorise; where it stays far below 100 % the rest is measurement noise
or something the arch does not determine.

    python scripts/latency_transfer_nb201.py          # writes results/latency_transfer_nb201.{md,json,png}
    python scripts/latency_transfer_nb201.py --devices raspi4 fpga --sizes 20 100 --seeds 0 1 --out /tmp/lt
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nasframe.hardware import describe_device
from nasframe.hardware.encoding import TermEncoder
from nasframe.hardware.external import EXTERNAL_TORCH, default_table_path, read_latency_table
from nasframe.hardware.metrics import latency_metrics
from nasframe.hardware.evaluate import best_prediction_seconds
from nasframe.hardware.models import MODELS, InteractionPredictor, TransferBackbone, fit_model, source_columns
from nasframe.hardware.predictor import PredictorKey, reference_options
from nasframe.core.arch import Arch
from nasframe.evaluation.zero_cost import ZeroCostConfig, ZeroCostEvaluator
from nasframe.markdown import markdown_table
from search_spaces.nb201 import NB201Space

BATCHED_DEVICES = ("1080ti", "titan_rtx")  # column names ending in the batch size
GPUS = ("1080ti_1", "1080ti_32", "1080ti_256", "titan_rtx_1", "titan_rtx_32", "titan_rtx_256")
CPUS_AND_PHONES = ("gold_6226", "gold_6240", "raspi4", "pixel3", "samsung_s7")
TARGET_N = 100  # the targets hold for N <= 100 measured archs
METRICS = ("within_10pct", "kendall_tau", "mape_pct", "rmse_ms")


def batch_size_of(column: str) -> int | None:
    stem, _, suffix = column.rpartition("_")
    return int(suffix) if stem in BATCHED_DEVICES and suffix.isdigit() else None


#: the trivial baselines: latency as an affine function of one structural count, fitted on the measured archs
BASELINES = ("flops", "params")


def structural_counts(space, archs) -> dict[str, np.ndarray]:
    """#params and FLOPs (multiply-accumulates) of every arch as a constant (the network without its cells' ops) plus
    one cost per non-``none`` edge and op, the same on every edge (every edge maps C to C channels); the costs are
    counted by nasframe's counter on the uniform cells. This counts every non-``none`` op, also one whose output
    never reaches the cell's output (nasframe's standalone network leaves some of those out), which is how a user
    would tabulate an op's cost; it is a trivial baseline, not a model of the network."""
    counter = ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy=list(BASELINES)))
    choices = space.choices
    uniform = {op: counter.component_values(Arch({c.name: op for c in choices})) for op in choices[0].options}
    base = {name: uniform[space.zero_option][name] for name in BASELINES}
    per_op = {op: {name: (v[name] - base[name]) / len(choices) for name in BASELINES} for op, v in uniform.items()}
    return {name: np.array([base[name] + sum(per_op[a[c.name]][name] for c in choices) for a in archs])
            for name in BASELINES}


def baseline_prediction(feature: np.ndarray, latency: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Latency as ``a * feature + b`` (least squares on the measured archs ``fit``), for every arch."""
    a, b = np.polyfit(feature[fit], latency[fit], 1)
    return a * feature + b


def learning_curve(space, matrix, columns, device, models, sizes, seeds, log=print,
                   counts: dict[str, np.ndarray] | None = None) -> tuple[list[dict], dict]:
    """Rows (device, model, num_measured) with mean and std over the draws; and the pre-training record."""
    latency = columns[device]
    key = PredictorKey(device, batch_size_of(device), EXTERNAL_TORCH, space.describe())
    reference = reference_options(space.choices, space.zero_option)
    started = time.perf_counter()
    backbone = (TransferBackbone.pretrain(space.choices, matrix, source_columns(columns, device), seed=0, target=device)
                if any(MODELS[m].needs_backbone for m in models) else None)
    pretrain = {"seconds": time.perf_counter() - started, "sources": list(backbone.sources) if backbone else [],
                **(backbone.details if backbone else {})}
    per_draw: dict[tuple[str, int], list[dict]] = {}
    for size in sizes:
        for seed in seeds:
            fit = np.sort(np.random.default_rng(seed).choice(len(latency), size=size, replace=False))
            held = np.setdiff1d(np.arange(len(latency)), fit)
            for name in models:
                predictor = fit_model(name, space.choices, matrix[fit], latency[fit], key, seed=seed,
                                      reference=reference, backbone=backbone)
                metrics = latency_metrics(predictor.predict_matrix(matrix[held]), latency[held])
                per_draw.setdefault((name, size), []).append(metrics)
            for name, feature in (counts or {}).items():
                metrics = latency_metrics(baseline_prediction(feature, latency, fit)[held], latency[held])
                per_draw.setdefault((f"baseline_{name}", size), []).append(metrics)
    rows = []
    for (name, size), draws in per_draw.items():
        row = {"device": device, "model": name, "num_measured": size, "draws": len(draws),
               "seeds": list(seeds), "evaluated_archs": draws[0]["n"]}
        for metric in METRICS:
            values = np.array([d[metric] for d in draws])
            out = metric.replace("_pct", "").replace("_ms", "") if metric in ("mape_pct", "rmse_ms") else metric
            row[out], row[f"{out}_std"] = float(values.mean()), float(values.std())
        rows.append(row)
        log(f"{device:<14} {name:<12} N={size:<4} within10 {row['within_10pct']:.3f}±{row['within_10pct_std']:.3f}  "
            f"tau {row['kendall_tau']:.3f}  mape {row['mape']:.2f}%")
    return rows, pretrain


def ceiling(matrix, latency) -> dict[str, float]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(max_iter=500, random_state=0).fit(matrix, latency)
    m = latency_metrics(model.predict(matrix), latency)
    return {"within_10pct": m["within_10pct"], "kendall_tau": m["kendall_tau"]}


def throughput(space, matrix, columns, repeats: int = 5) -> dict[str, dict[str, float]]:
    """Best-of-``repeats`` archs/s of each model on the whole population: end to end from Arch objects (encoding
    included) and on the ready 0/1 matrix. The models are fitted on 200 archs of raspi4 (where the interaction
    model keeps the most trees: its slowest case), else of the first device."""
    device = "raspi4" if "raspi4" in columns else next(iter(columns))
    archs = list(space.enumerate())
    fit = np.random.default_rng(0).choice(len(archs), 200, replace=False)
    key = PredictorKey(device, None, EXTERNAL_TORCH, space.describe())
    backbone = TransferBackbone.pretrain(space.choices, matrix, source_columns(columns, device), seed=0, target=device)
    out = {}
    for name in MODELS:
        predictor = fit_model(name, space.choices, matrix[fit], columns[device][fit], key, seed=0,
                              reference=reference_options(space.choices, space.zero_option), backbone=backbone)
        best_matrix, best_archs = best_prediction_seconds(predictor, matrix, archs, repeats)
        trees = predictor.trees.num_trees if isinstance(predictor, InteractionPredictor) else None
        out[name] = {"end_to_end_per_s": len(archs) / best_archs, "matrix_per_s": len(archs) / best_matrix,
                     "fitted_on": f"{device}, 200 archs", "trees": trees}
    return out


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets at N = TARGET_N (mean over draws), for the best model of each device and for each model."""
    out = []
    at = [r for r in rows if r["num_measured"] == TARGET_N]
    for device in dict.fromkeys(r["device"] for r in at):
        everything = [r for r in at if r["device"] == device]
        mine = [r for r in everything if r["model"] in MODELS]
        best = max(mine, key=lambda r: r["within_10pct"])
        need = 0.95 if device in GPUS else 0.90 if device in CPUS_AND_PHONES else None
        out.append({
            "device": device, "best_model": best["model"], "within_10pct": best["within_10pct"],
            "within_target": need, "within_met": None if need is None else bool(best["within_10pct"] >= need),
            "best_tau_model": max(mine, key=lambda r: r["kendall_tau"])["model"],
            "kendall_tau": max(r["kendall_tau"] for r in mine), "tau_met": bool(max(r["kendall_tau"] for r in mine) >= 0.9),
            "additive_within_10pct": next((r["within_10pct"] for r in mine if r["model"] == "additive"), None),
            **{f"{r['model']}_{metric}": r[metric] for r in everything if r["model"].startswith("baseline_")
               for metric in ("within_10pct", "kendall_tau")},
        })
    return out


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=None, help="latency CSV (default $NASFRAME_DATA/nb201/latency_ms.csv)")
    parser.add_argument("--devices", nargs="+", default=None, help="device columns (default: all)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 50, 100, 200], help="measured archs N")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="draws of the measured archs")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the in-sample ceiling")
    parser.add_argument("--no-timing", action="store_true", help="skip the throughput measurement")
    parser.add_argument("--out", default="results")
    parser.add_argument("--name", default="latency_transfer_nb201")
    args = parser.parse_args(argv)

    path = Path(args.table) if args.table else default_table_path()
    if not path.is_file():
        print(f"skipped: no latency table at {path} (set $NASFRAME_DATA or pass --table)")
        return None
    started = time.perf_counter()
    space = NB201Space()
    archs, columns = read_latency_table(path, space)
    matrix = TermEncoder(space.choices).encode(archs)
    devices = args.devices or list(columns)
    unknown = [d for d in devices if d not in columns]
    if unknown:
        parser.error(f"unknown device column(s) {unknown}; the table has {list(columns)}")
    if any(not 2 <= n < len(archs) for n in args.sizes):
        parser.error(f"--sizes must lie in [2, {len(archs) - 1}]")

    counts = structural_counts(space, archs)
    rows, pretraining, ceilings = [], {}, {}
    for device in devices:
        device_rows, pretraining[device] = learning_curve(space, matrix, columns, device, args.models, args.sizes,
                                                          args.seeds, counts=counts)
        rows += device_rows
        if not args.no_ceiling:
            ceilings[device] = ceiling(matrix, columns[device])
    speed = {} if args.no_timing else throughput(space, matrix, columns)
    for name, s in speed.items():
        print(f"{name:<12} {s['end_to_end_per_s']:,.0f} archs/s end to end, {s['matrix_per_s']:,.0f} on the 0/1 matrix")

    report = {
        "command": "python scripts/latency_transfer_nb201.py" + ("" if not argv else " " + " ".join(argv)),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": describe_device("cpu"),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "scikit-learn": __import__("sklearn").__version__},
        "data": {"path": f"$NASFRAME_DATA/{'/'.join(path.parts[-2:])}", "archs": len(archs), "devices": list(columns)},
        "protocol": {"sizes": args.sizes, "seeds": args.seeds, "models": [*args.models, *(f"baseline_{b}" for b in BASELINES)],
                     "evaluation": "all archs not measured, metrics averaged over the draws (std over draws)",
                     "transfer": "leave-one-device-out: backbone pre-trained (seed 0) on the other devices' columns, all archs"},
        "rows": rows,
        "targets_at_n100": targets(rows),
        "in_sample_ceiling_hgb": ceilings,
        "pretraining": pretraining,
        "throughput": speed,
        "seconds": time.perf_counter() - started,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{args.name}.md").write_text(markdown(report))
    plot(report, out / f"{args.name}.png")
    print(f"written to {out / args.name}.{{md,json,png}} in {report['seconds']:.0f} s")
    return report


def markdown(report: dict) -> str:
    p = report["protocol"]
    v = report["versions"]
    lines = [
        "# Latency models that transfer: learning curves on NAS-Bench-201 x 13 devices",
        "",
        f"- data: `{report['data']['path']}`, {report['data']['archs']:,} archs (HW-NAS-Bench, Li et al., ICLR 2021, and HELP)",
        "- models (`nasframe.hardware.models`): **additive** (one ridge-fitted term per edge and op, the default); "
        "**interaction** (additive + gradient-boosted trees on its residual over the 0/1 terms, each choice's "
        "additive term and the additive sum; number of trees by 5-fold CV on the measured archs); **transfer** "
        "(MLP pre-trained on the other devices' log-latencies, then a ridge head on the target from the N measured "
        "archs, penalty by leave-one-out on them)",
        f"- protocol: N in {p['sizes']} measured archs drawn uniformly, seeds {p['seeds']} (same draw for every "
        "model); metrics on all the other archs; mean ± std over the draws. Transfer: leave-one-device-out, the "
        "target's column never enters pre-training",
        f"- machine: {report['machine']} (at the committed run: otherwise idle); python {v['python']}, torch "
        f"{v['torch']}, numpy {v['numpy']}, scikit-learn {v['scikit-learn']}",
        f"- command: `{report['command']}` ({report['date']}, {report['seconds']:.0f} s)",
        "",
        "## Targets at N = 100 (best model per device, mean over draws)",
        "",
    ]
    rows = []
    for t in report["targets_at_n100"]:
        need = "-" if t["within_target"] is None else f"{t['within_target']:.0%}"
        met = "-" if t["within_met"] is None else ("met" if t["within_met"] else "missed")
        rows.append([t["device"], t.get("baseline_flops_within_10pct"), t.get("baseline_flops_kendall_tau"),
                     t["additive_within_10pct"], t["best_model"], t["within_10pct"], need, met,
                     t["kendall_tau"], "met" if t["tau_met"] else "missed"])
    lines.append(markdown_table(
        ["device", "baseline FLOPs within ±10 %", "baseline FLOPs tau", "additive within ±10 %", "best model",
         "its within ±10 %", "target", "within target", "best Kendall tau", "tau >= 0.9"], rows, "lrrrlrrlrl",
        formats=[None, ".3f", ".3f", ".3f", None, ".3f", None, None, ".3f", None]))
    lines += ["", "Baselines (trivial, no latency model): latency as an affine function of the arch's FLOPs or #params "
              "(counted per non-`none` op, `structural_counts`), fitted on the same N measured archs and scored on the same held-out archs "
              "(rows `baseline_flops`, `baseline_params` below)."]
    missed = [t for t in report["targets_at_n100"] if t["within_met"] is False or not t["tau_met"]]
    ceilings = report["in_sample_ceiling_hgb"]
    if missed:
        lines += ["", "Missed targets (best model at N = 100), beside the in-sample fit of a flexible model of the arch "
                  "alone (HistGradientBoostingRegressor fitted on all 15,625 archs and scored on the same archs; section "
                  "below):", ""]
        for t in missed:
            c = ceilings.get(t["device"])
            line = f"- {t['device']}: {t['within_10pct']:.3f} within ±10 %, tau {t['kendall_tau']:.3f}"
            if c:
                line += f"; in-sample fit {c['within_10pct']:.3f} / {c['kendall_tau']:.3f}"
                below = [name for name, ok in (("the ±10 % target", t["within_target"] is None or c["within_10pct"] >= t["within_target"]),
                                               ("tau 0.9", c["kendall_tau"] >= 0.9)) if not ok]
                if below:
                    line += f" (the in-sample fit itself misses {' and '.join(below)})"
            lines.append(line)
        lines += ["", "Where even the in-sample fit misses a target, a model that sees only the arch and 100 measured "
                  "archs has little chance to reach it: the remainder looks like measurement noise (samsung_s7 is stored "
                  "in whole milliseconds, 4 % of its median latency) or depends on something the table does not record. "
                  "This is an indication, not a proof: the in-sample fit is not a bound."]
    sizes = p["sizes"]
    for metric, title, fmt in (("within_10pct", "Share within ±10 % (held-out archs)", ".3f"),
                               ("kendall_tau", "Kendall tau (held-out archs)", ".3f"),
                               ("mape", "MAPE % (held-out archs)", ".1f")):
        lines += ["", f"## {title}, mean ± std over draws", ""]
        table = []
        for device in report["data"]["devices"]:
            for model in p["models"]:
                cells = []
                for n in sizes:
                    r = next((r for r in report["rows"] if (r["device"], r["model"], r["num_measured"]) == (device, model, n)), None)
                    cells.append(None if r is None else f"{r[metric]:{fmt}} ± {r[metric + '_std']:{fmt}}")
                if any(c is not None for c in cells):
                    table.append([device, model, *cells])
        lines.append(markdown_table(["device", "model", *[f"N={n}" for n in sizes]], table, "ll" + "r" * len(sizes)))
    if report["in_sample_ceiling_hgb"]:
        lines += ["", "## In-sample ceiling (context, not a prediction result)", "",
                  "HistGradientBoostingRegressor on the 0/1 terms, fitted on all archs and scored on the same archs.", ""]
        lines.append(markdown_table(["device", "within ±10 %", "Kendall tau"],
                                    [[d, c["within_10pct"], c["kendall_tau"]] for d, c in report["in_sample_ceiling_hgb"].items()],
                                    "lrr", formats=[None, ".3f", ".3f"]))
    if report["throughput"]:
        lines += ["", "## Throughput (archs/s, whole population of 15,625, best of 5, 2-core machine)", ""]
        lines.append(markdown_table(["model", "fitted on", "trees", "end to end from Arch objects", "on the 0/1 matrix"],
                                    [[m, s["fitted_on"], s["trees"], f"{s['end_to_end_per_s']:,.0f}", f"{s['matrix_per_s']:,.0f}"]
                                     for m, s in report["throughput"].items()], "llrrr"))
        lines += ["", "Timed on an otherwise idle 2-core machine."]
    lines.append("")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices, models, sizes = report["data"]["devices"], report["protocol"]["models"], report["protocol"]["sizes"]
    devices = [d for d in devices if any(r["device"] == d for r in report["rows"])]
    cols = 4
    fig, axes = plt.subplots((len(devices) + cols - 1) // cols, cols, figsize=(4 * cols, 3 * ((len(devices) + cols - 1) // cols)),
                             squeeze=False, sharex=True)
    for ax, device in zip(axes.flat, devices):
        for k, model in enumerate(models):
            rows = sorted((r for r in report["rows"] if r["device"] == device and r["model"] == model),
                          key=lambda r: r["num_measured"])
            n = [r["num_measured"] for r in rows]
            width = 3.0 - 0.8 * k  # wider lines drawn first, so models that coincide stay visible
            ax.errorbar(n, [r["within_10pct"] for r in rows], yerr=[r["within_10pct_std"] for r in rows],
                        color=f"C{k}", marker="o", ms=3, lw=width, label=f"{model} within ±10 %")
            ax.plot(n, [r["kendall_tau"] for r in rows], color=f"C{k}", ls="--", lw=1, label=f"{model} tau")
        need = 0.95 if device in GPUS else 0.90 if device in CPUS_AND_PHONES else None
        if need:
            ax.axhline(need, color="grey", lw=0.8, ls=":")
        ax.set_title(device, fontsize=9)
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(devices):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", fontsize=8, ncol=2)
    fig.supxlabel("measured archs N (log scale)")
    fig.suptitle("NB201 latency: share within ±10 % (solid, ±std over 5 draws) and Kendall tau (dashed); dotted: target")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1:])
