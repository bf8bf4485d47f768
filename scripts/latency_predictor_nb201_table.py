"""The additive latency predictor against real hardware: NAS-Bench-201 on 13 devices (HW-NAS-Bench table).

Data: ``$NASFRAME_DATA/nb201/latency_ms.csv``, the measured latency of all 15,625 NAS-Bench-201 archs on 13 devices,
from "HW-NAS-Bench: Hardware-Aware Neural Architecture Search Benchmark" (Li et al., ICLR 2021) and the HELP
release. The devices cannot be reached from here, so the table terms are not measured op by op: for each device
column, the additive model (one term per (edge, op), the ``none`` op pinned to 0, plus an intercept) is fitted by
ridge regression (``--ridge``, unpenalised intercept) on ``--fit`` archs drawn uniformly without replacement with
``--seed``, and evaluated on the other archs only (never on the fitting set).

Also reported, to read the headline: the spread of the metrics over ``--spread-seeds`` other fit sets of the
same size, and the in-sample ceiling of the additive model (fitted on all archs, evaluated on the same archs:
how additive the device is, not a prediction result).

Predictions per second are timed on the whole population (15,625 archs) as (a) one matrix-vector product on the
population's 0/1 term matrix and (b) end to end from Arch objects (encoding included).

    python scripts/latency_predictor_nb201_table.py                 # writes results/latency_predictor_nb201_table.{md,json}
    python scripts/latency_predictor_nb201_table.py --fit 100 --out /tmp/x
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from nasframe.hardware import describe_device
from nasframe.hardware.external import default_table_path, fit_from_measurements, read_latency_table
from nasframe.hardware.evaluate import best_prediction_seconds
from nasframe.hardware.metrics import latency_metrics
from nasframe.markdown import markdown_table
from search_spaces.nb201 import NB201Space

#: the devices of the table whose column name ends in the batch size (README of the data folder)
BATCHED_DEVICES = ("1080ti", "titan_rtx")
#: a held-out arch measured below this fraction of the device's median latency counts as collapsed
COLLAPSED = 0.05


def batch_size_of(column: str) -> int | None:
    stem, _, suffix = column.rpartition("_")
    return int(suffix) if stem in BATCHED_DEVICES and suffix.isdigit() else None


def predictions_per_second(predictor, archs, repeats: int) -> dict[str, float]:
    best_matvec, best_end_to_end = best_prediction_seconds(predictor, predictor.encoder.encode(archs), archs, repeats)
    return {
        "population": len(archs),
        "matvec_per_s": len(archs) / best_matvec,
        "end_to_end_per_s": len(archs) / best_end_to_end,
        "timing": f"best of {repeats} runs",
    }


def evaluate_column(space, archs, latency, column, fit_size, seed, ridge) -> dict:
    rng = np.random.default_rng(seed)
    fit = np.sort(rng.choice(len(archs), size=fit_size, replace=False))
    held = np.setdiff1d(np.arange(len(archs)), fit)
    predictor = fit_from_measurements(
        space, [archs[k] for k in fit], latency[fit], column, batch_size_of(column), ridge
    )
    matrix = predictor.encoder.encode(archs)
    predicted = predictor.predict_matrix(matrix[held])
    metrics = latency_metrics(predicted, latency[held])
    # archs that a deployment compiler folds to almost nothing (raspi4, pixel3): no additive model predicts them
    normal = latency[held] >= COLLAPSED * np.median(latency)
    metrics["collapsed_archs"] = int((~normal).sum())
    metrics["mape_pct_without_collapsed"] = latency_metrics(predicted[normal], latency[held][normal])["mape_pct"]
    return {"predictor": predictor, "metrics": metrics, "fit_indices": fit.tolist()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=None, help="latency CSV (default $NASFRAME_DATA/nb201/latency_ms.csv)")
    parser.add_argument("--fit", type=int, default=50, help="archs in the fitting set (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fitting set")
    parser.add_argument("--ridge", type=float, default=1e-2, help="ridge penalty on the terms (ms^2 per ms^2)")
    parser.add_argument("--spread-seeds", type=int, default=10, help="other fit sets for the spread (seeds 1..n)")
    parser.add_argument("--timing-repeats", type=int, default=20)
    parser.add_argument("--out", default="results", help="output directory")
    parser.add_argument("--name", default="latency_predictor_nb201_table")
    args = parser.parse_args(argv)

    space = NB201Space()
    path = Path(args.table) if args.table else default_table_path()
    archs, columns = read_latency_table(path, space)
    if not 2 <= args.fit < len(archs):
        parser.error(f"--fit must be in [2, {len(archs) - 1}]")

    devices = {}
    for column, latency in columns.items():
        main_run = evaluate_column(space, archs, latency, column, args.fit, args.seed, args.ridge)
        spread = [
            evaluate_column(space, archs, latency, column, args.fit, seed, args.ridge)["metrics"]
            for seed in range(args.seed + 1, args.seed + 1 + args.spread_seeds)
        ]
        full = fit_from_measurements(space, archs, latency, column, batch_size_of(column), args.ridge)
        predictor = main_run["predictor"]
        devices[column] = {
            "batch_size": batch_size_of(column),
            "median_latency_ms": float(np.median(latency)),
            "held_out": main_run["metrics"],
            "spread_over_fit_sets": {
                metric: {"mean": float(np.mean([m[metric] for m in spread])), "std": float(np.std([m[metric] for m in spread]))}
                for metric in ("within_10pct", "kendall_tau", "mape_pct")
            } if spread else {},
            "in_sample_ceiling": latency_metrics(full.predict(archs), latency),
            "terms_ms": {f"{c}/{o}": round(predictor.term_ms(c, o), 5) for c, o in predictor.encoder.columns},
            "intercept_ms": predictor.intercept,
            "fit_indices": main_run["fit_indices"],
        }
        print(f"{column:<14} within10 {main_run['metrics']['within_10pct']:.3f}  tau {main_run['metrics']['kendall_tau']:.3f}  "
              f"mape {main_run['metrics']['mape_pct']:.2f}%", flush=True)

    last = fit_from_measurements(space, archs, next(iter(columns.values())), "timing", None, args.ridge)
    speed = predictions_per_second(last, archs, args.timing_repeats)
    print(f"predictions/s: {speed['matvec_per_s']:.3g} (matvec), {speed['end_to_end_per_s']:.3g} (from Arch objects)")

    report = {
        "command": "python scripts/latency_predictor_nb201_table.py" + ("" if not argv else " " + " ".join(argv)),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": describe_device("cpu"),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "data": {"path": f"$NASFRAME_DATA/{'/'.join(path.parts[-2:])}", "archs": len(archs), "devices": list(columns),
                 "source": "HW-NAS-Bench (Li et al., ICLR 2021) and HELP"},
        "protocol": {"fit_archs": args.fit, "held_out_archs": len(archs) - args.fit, "seed": args.seed,
                     "ridge": args.ridge, "spread_seeds": list(range(args.seed + 1, args.seed + 1 + args.spread_seeds)),
                     "model": "additive: one term per (edge, op), none = 0, plus intercept; ridge least squares"},
        "predictions_per_second": speed,
        "devices": devices,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{args.name}.md").write_text(markdown(report))
    print(f"written to {out / args.name}.md and .json")
    return report


def markdown(report: dict) -> str:
    p, speed = report["protocol"], report["predictions_per_second"]
    lines = [
        "# Additive latency predictor vs real hardware: NAS-Bench-201 on 13 devices",
        "",
        f"- data: `{report['data']['path']}`, {report['data']['archs']:,} archs, measured latency from "
        "\"HW-NAS-Bench: Hardware-Aware Neural Architecture Search Benchmark\" (Li et al., ICLR 2021) and HELP",
        f"- model: {p['model']} (ridge {p['ridge']})",
        f"- protocol: fitted on {p['fit_archs']} archs drawn uniformly with seed {p['seed']}, evaluated on the other "
        f"{p['held_out_archs']:,} archs only; spread = mean ± std over {len(p['spread_seeds'])} other fit sets of the same size",
        "- ceiling: the same model fitted on all archs and evaluated in sample (how additive the device is; not a prediction result)",
        f"- collapsed archs: held-out archs measured below {COLLAPSED:.0%} of the device's median latency (on raspi4 and "
        "pixel3 a few hundred archs take a fraction of a millisecond: their deployment toolchain folds them, for "
        "example cells whose output does not depend on their input); they dominate MAPE there, so MAPE without them is shown too",
        "- resolution: samsung_s7 is stored in whole milliseconds (a 1 ms step is 4 % of its median latency)",
        f"- machine: {report['machine']}; python {report['versions']['python']}, torch {report['versions']['torch']}, "
        f"numpy {report['versions']['numpy']}",
        f"- command: `{report['command']}` ({report['date']})",
        "",
    ]
    table = []
    for name, d in report["devices"].items():
        m, s, c = d["held_out"], d["spread_over_fit_sets"], d["in_sample_ceiling"]
        table.append([
            name, d["batch_size"] or None, d["median_latency_ms"], m["rmse_ms"], m["mape_pct"], m["within_10pct"],
            m["kendall_tau"], f"{s['within_10pct']['mean']:.3f} ± {s['within_10pct']['std']:.3f}" if s else None,
            f"{s['kendall_tau']['mean']:.3f} ± {s['kendall_tau']['std']:.3f}" if s else None, c["within_10pct"],
            c["kendall_tau"], m["collapsed_archs"], m["mape_pct_without_collapsed"]])
    lines.append(markdown_table(
        ["device", "batch", "median latency (ms)", "RMSE (ms)", "MAPE (%)", "within ±10 %", "Kendall tau",
         "within ±10 % over fit sets", "tau over fit sets", "ceiling within ±10 %", "ceiling tau", "collapsed archs",
         "MAPE without them (%)"],
        table, "l" + "r" * 12,
        formats=[None, None, ".3f", ".3f", ".2f", ".3f", ".3f", None, None, ".3f", ".3f", None, ".2f"]))
    lines += [
        "",
        f"Predictions per second on the whole population ({speed['population']:,} archs, {speed['timing']}): "
        f"{speed['matvec_per_s']:,.0f} as one matrix-vector product on the 0/1 term matrix, "
        f"{speed['end_to_end_per_s']:,.0f} end to end from Arch objects (encoding included). "
        "Timed on a loaded 2-core VM (another experiment was running): a lower bound for a quiet machine.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
