"""Learning curves of the latency models on THIS machine: the workflow of a user without a device table.

For each space (NAS-Bench-201 C=16 N=5 at batch 1; the CPU MobileNetV3 of mobilenet_pareto_cifar10_cpu at
batch 16): build the lookup table op by op with ``nasframe latency``'s measurement
(:func:`nasframe.hardware.lut.build_lut`), measure ``--archs`` distinct whole archs in one shuffled order
(:func:`nasframe.hardware.lut.measure_archs`), then for N = ``--sizes`` and 5 draws (seeds 0-4): fit every model
on N of the measured archs (their latencies are all it sees; the table is the op-by-op measurement), and score it
on all the other measured archs: share within +-10 %, Kendall tau, MAPE, RMSE. The transfer model's backbone is
pre-trained on the 13 devices of the HW-NAS-Bench / HELP table (NAS-Bench-201 only; this machine is not one of
them, so the target never enters the pre-training). Beside them, the trivial baseline: latency as an affine
function of the arch's parameter count, fitted on the same N.

The measurement's own repeatability is the ceiling of every model: ``--recheck`` archs are measured a second time
after the others, and the second measurement is scored against the first with the same metrics.

Run it on a quiet machine: latency measured while other work runs is not a measurement of the device.

    python scripts/latency_curves_measured.py                       # writes results/latency_curves_cpu.{md,json,png}
    python scripts/latency_curves_measured.py --spaces nb201 --archs 60 --sizes 10 20 --repeats 5 --out /tmp/lc
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from nasframe.core.space import DataSpec
from nasframe.hardware import describe_device
from nasframe.hardware.encoding import TermEncoder
from nasframe.hardware.evaluate import distinct_archs
from nasframe.hardware.external import default_table_path, read_latency_table
from nasframe.hardware.lut import MeasureSettings, build_lut, find_adapter, measure_archs
from nasframe.hardware.metrics import latency_metrics
from nasframe.hardware.models import TransferBackbone, fit_model
from nasframe.markdown import markdown_table
from search_spaces.mobilenet import MobileNetSpace
from search_spaces.nb201 import NB201Space

SPACES = {
    "nb201": (lambda: NB201Space(DataSpec(3, (32, 32), 10), channels=16, cells_per_stage=5), 1),
    "mobilenet": (lambda: MobileNetSpace(DataSpec(3, (32, 32), 10), width_mult=0.5, stem_stride=2, head_channels=256), 16),
}
METRICS = ("within_10pct", "kendall_tau", "mape_pct", "rmse_ms")


def params_of(space, archs) -> np.ndarray:
    return np.array([sum(p.numel() for p in space.build_subnet(a).parameters()) for a in archs], dtype=float)


def curves(table, archs, measured, params, sizes, seeds, backbone=None) -> list[dict]:
    """Every model fitted on N measured archs (seeded draws, the same draw for every model) and scored on the rest."""
    matrix = table.encoder.encode(archs)
    rows = []
    for n in sizes:
        for seed in seeds:
            order = np.random.default_rng(seed).permutation(len(archs))
            train, test = order[:n], order[n:]
            for name in ("additive", "interaction", *(("transfer",) if backbone is not None else ())):
                model = fit_model(name, table.encoder.choices, matrix[train], measured[train], table.key, seed=seed,
                                  table=table, arch_map=table.encoder.arch_map, backbone=backbone)
                predicted = model.predict([archs[i] for i in test])
                rows.append({"model": name, "num_measured": n, "seed": seed, **latency_metrics(predicted, measured[test])})
            slope, offset = np.polyfit(params[train], measured[train], 1)
            rows.append({"model": "baseline: affine in #params", "num_measured": n, "seed": seed,
                         **latency_metrics(slope * params[test] + offset, measured[test])})
    return rows


def summarise(rows: list[dict]) -> dict[tuple[str, str, int], dict[str, tuple[float, float]]]:
    """Mean and standard deviation over draws of every metric, per (space, model, N)."""
    out: dict = {}
    for row in rows:
        out.setdefault((row["space"], row["model"], row["num_measured"]), []).append(row)
    return {key: {m: (float(np.mean([r[m] for r in rs])), float(np.std([r[m] for r in rs]))) for m in METRICS}
            for key, rs in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES))
    parser.add_argument("--archs", type=int, default=300, help="whole archs measured per space")
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 20, 50, 100, 200])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recheck", type=int, default=50, help="archs measured twice: the measurement's repeatability")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": describe_device("cpu"),
              "versions": {"python": platform.python_version(), "torch": torch.__version__},
              "command": "python scripts/latency_curves_measured.py", "threads": args.threads, "spaces": {}, "rows": []}
    for name in args.spaces:
        build, batch = SPACES[name]
        space = build()
        settings = MeasureSettings("cpu", batch, args.warmup, args.repeats)
        adapter = find_adapter(space)
        started = time.perf_counter()
        table = build_lut(space, adapter, settings)
        table_seconds = time.perf_counter() - started
        archs = distinct_archs(space, args.archs, np.random.default_rng(1234))
        order = np.random.default_rng(4321).permutation(len(archs))  # drift of the machine hits every arch alike
        measured = np.empty(len(archs))
        started = time.perf_counter()
        measured[order] = measure_archs(adapter, [archs[k] for k in order], settings)
        measure_seconds = time.perf_counter() - started
        again = order[: args.recheck]
        remeasured = measure_archs(adapter, [archs[k] for k in again], settings)
        repeatability = latency_metrics(remeasured, measured[again])
        backbone = None
        if name == "nb201":
            table_archs, columns = read_latency_table(default_table_path(), space)
            backbone = TransferBackbone.pretrain(space.choices, TermEncoder(space.choices).encode(table_archs), columns,
                                                 seed=0)
        sizes = [n for n in args.sizes if n <= len(archs) - 20]
        rows = curves(table, archs, measured, params_of(space, archs), sizes, args.seeds, backbone)
        for row in rows:
            row["space"] = name
        report["rows"] += rows
        report["spaces"][name] = {"batch_size": batch, "archs": len(archs), "table_seconds": round(table_seconds, 1),
                                  "measure_seconds": round(measure_seconds, 1), "warmup": args.warmup,
                                  "repeats": args.repeats, "measured_ms": {"median": float(np.median(measured)),
                                                                           "min": float(measured.min()),
                                                                           "max": float(measured.max())},
                                  "transfer_source": str(default_table_path()) if backbone is not None else None,
                                  "repeatability": {"archs": len(again), **repeatability}}
        print(f"{name}: table {table_seconds:.0f} s, {len(archs)} archs {measure_seconds:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency_curves_cpu.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "latency_curves_cpu.md").write_text(render(report))
    plot(report, args.out / "latency_curves_cpu.png")
    print(render(report))


def render(report: dict) -> str:
    lines = ["# Latency models on this CPU, from latencies measured here", "",
             f"- {report['date']}, {report['machine']}, torch {report['versions']['torch']}; "
             f"`{report['command']}`",
             "- protocol: the op-by-op table and every whole arch measured with `nasframe latency`'s measurement (median "
             "of the repeats after warm-up, archs in one shuffled order); each model fitted on N measured archs (5 "
             "draws), scored on all the other measured archs; transfer pre-trained on the 13 devices of the "
             "HW-NAS-Bench / HELP table (never on this machine); mean ± std over draws", ""]
    summary = summarise(report["rows"])
    for name, info in report["spaces"].items():
        lines += [f"## {name} (batch {info['batch_size']}; {info['archs']} archs measured in {info['measure_seconds']:.0f} s, "
                  f"table in {info['table_seconds']:.0f} s; whole-arch latency {info['measured_ms']['min']:.2f}-"
                  f"{info['measured_ms']['max']:.2f} ms, median {info['measured_ms']['median']:.2f})", ""]
        again = info["repeatability"]
        lines += [f"The measurement itself: {again['archs']} archs measured a second time agree with their first "
                  f"measurement within ±10 % for {again['within_10pct']:.3f} of them, Kendall tau {again['kendall_tau']:.3f}, "
                  f"MAPE {again['mape_pct']:.1f} %: every model is scored against such single measurements, so its scores are capped near these.", ""]
        rows = [r for r in report["rows"] if r["space"] == name]
        models = list(dict.fromkeys(r["model"] for r in rows))
        sizes = sorted({r["num_measured"] for r in rows})
        for metric, label, fmt in (("within_10pct", "within ±10 %", "{:.3f}"), ("kendall_tau", "Kendall tau", "{:.3f}"),
                                   ("mape_pct", "MAPE %", "{:.1f}")):
            table = [[m, *(" ± ".join(fmt.format(v) for v in summary[(name, m, n)][metric])
                           if (name, m, n) in summary else None for n in sizes)] for m in models]
            lines += [f"{label}:", "", markdown_table(["model", *(f"N={n}" for n in sizes)], table,
                                                       "l" + "r" * len(sizes)), ""]
    lines.append("![within ±10 % against N](latency_curves_cpu.png)")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(report["rows"])
    names = list(report["spaces"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), dpi=120, squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = [r for r in report["rows"] if r["space"] == name]
        for model in dict.fromkeys(r["model"] for r in rows):
            sizes = sorted({r["num_measured"] for r in rows if r["model"] == model})
            means = [summary[(name, model, n)]["within_10pct"][0] for n in sizes]
            ax.plot(sizes, means, marker="o", label=model)
        ax.set_xscale("log")
        ax.set_xlabel("measured archs N")
        ax.set_ylabel("held-out share within ±10 %")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
