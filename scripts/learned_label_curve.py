"""How many labelled models a learned ranker needs on NAS-Bench-Graph Cora, from features that cost nothing.

    python scripts/learned_label_curve.py                 # every one of the 26,206 Cora models (about 12 min)
    python scripts/learned_label_curve.py --limit 2000 --labelled 25 100 --draws 2 --out /tmp/curve   # a quick look

No training-free proxy ranks Cora (``results/zero_cost_cora/``: every one at Kendall tau <= 0.13), so what a user
can rank with is labels: models trained and measured. This measures the learned evaluator
(:class:`~nasframe.evaluation.surrogate.ProxySurrogate`, the model of ``evaluator=learned`` and of
``selector=predictor_guided``) fitted on N models' *valid* accuracy from the table, over features that need no
network run -- #params (counted on the meta device), the one-hot arch encoding and the space's cell-structure
features (``GNNBenchSpace.structure_features``: ops by where they act) -- and measures its ranking of every
model not drawn against *test* accuracy (fit on valid, report test), for N = 10 ... 8,000 and 5 draws (seeds
0-4). The models (``MODELS``) are the learned evaluator's choices, with and without the cell-structure features.
Because proxies need no computing here, every model of the table is scored, not a sample.

Besides the rows: the table's own valid accuracy as the ranking of every model (the ceiling of anything fitted on
valid), and the same surrogate fitted on *every* model's valid accuracy and scored on the same models (in-sample:
what the features can carry at most, not a held-out measurement).

Writes ``<out>/learned_label_curve.{json,md}`` (default ``results/zero_cost_cora``); JSON rows carry ``method``,
``seed`` (the draw), ``num_labelled``, ``num_archs``, ``kendall_tau``, ``spearman`` and ``found_true`` against
test, and ``valid_kendall_tau`` (against valid, which a choice between rows may use).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nasframe.evaluation.ranking import ranking_metrics
from nasframe.evaluation.surrogate import ProxySurrogate
from nasframe.markdown import markdown_table

from zero_cost_ranking import cora_target  # scripts/ is on the path when a script runs

LABELLED = (10, 25, 50, 100, 400, 1000, 2000, 4000, 8000)
DRAWS = 5
#: row -> (surrogate model, cell-structure features); every row has #params and the one-hot encoding
MODELS = {"gbt+pairwise + encoding + cell features": ("gbt+pairwise", True),
          "gbt + encoding + cell features": ("gbt", True),
          "ridge + encoding + cell features": ("ridge", True),
          "gbt+pairwise + encoding": ("gbt+pairwise", False),
          "gbt + encoding": ("gbt", False),
          "ridge + encoding": ("ridge", False)}
LABEL, METRIC = "cora_valid", "cora_test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/zero_cost_cora"))
    parser.add_argument("--labelled", type=int, nargs="+", default=list(LABELLED))
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--limit", type=int, default=0, help="the first N models of the table only (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    target = cora_target(torch.device("cpu"))
    space, archs = target.space, target.archs[: args.limit or None]
    truths = {t: np.asarray(v)[: len(archs)] for t, v in target.truths.items()}
    counted = time.perf_counter()
    values = [{"params": float(space.count_params(a))} for a in archs]
    count_seconds = time.perf_counter() - counted
    labelled = [n for n in args.labelled if n <= len(archs) - 200]

    rows = []
    for n in labelled:
        for draw in range(args.draws):
            chosen = np.random.default_rng(draw).choice(len(archs), size=n, replace=False)
            rest = np.setdiff1d(np.arange(len(archs)), chosen)
            for method, (model, structure) in MODELS.items():
                fitted = time.perf_counter()
                surrogate = ProxySurrogate(space, ["params"], values, model, encode_arch=True, seed=draw,
                                           cell_features=structure)
                surrogate.fit([archs[i] for i in chosen], [values[i] for i in chosen], truths[LABEL][chosen])
                predicted = surrogate.predict([archs[i] for i in rest], [values[i] for i in rest])
                rows.append(_row(method, draw, n, predicted, truths, rest, time.perf_counter() - fitted))
            done = ", ".join(f"{r['method']} {r['kendall_tau']:.3f}" for r in rows[-len(MODELS):])
            print(f"N={n} draw {draw}: {done}", flush=True)

    ceilings = {"valid accuracy itself": ranking_metrics(truths[LABEL], truths[METRIC])}
    for method, (model, structure) in MODELS.items():
        surrogate = ProxySurrogate(space, ["params"], values, model, encode_arch=True, seed=0, cell_features=structure)
        surrogate.fit(archs, values, truths[LABEL])
        ceilings[f"{method}, fitted on every model (in-sample)"] = ranking_metrics(
            surrogate.predict(archs, values), truths[METRIC])
    ceilings["#params alone (zero-shot)"] = ranking_metrics([v["params"] for v in values], truths[METRIC])

    report = {"protocol": {"archs": len(archs), "labelled": labelled, "draws": args.draws, "label": LABEL,
                           "metric": METRIC, "features": "#params (meta-device count), one-hot encoding, and "
                           "where named the space's cell-structure features",
                           "count_params_seconds_per_model": count_seconds / len(archs),
                           "command": "python " + " ".join(sys.argv), "machine": f"{platform.machine()}, CPU, "
                           f"{args.threads} thread(s)", "torch": torch.__version__,
                           "seconds": time.perf_counter() - started, "date": time.strftime("%Y-%m-%d")},
              "ceilings": ceilings, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learned_label_curve.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "learned_label_curve.md").write_text(markdown(report))


def _row(method: str, draw: int, labelled: int, scores: np.ndarray, truths: dict, rest: np.ndarray,
         seconds: float) -> dict:
    test = ranking_metrics(scores, truths[METRIC][rest])
    return {"method": method, "seed": draw, "num_labelled": labelled, "num_archs": len(rest),
            "kendall_tau": test["kendall_tau"], "spearman": test["spearman"],
            "found_true": test["true_accuracy_of_best_scored"], METRIC: test,
            "valid_kendall_tau": ranking_metrics(scores, truths[LABEL][rest])["kendall_tau"],
            "fit_and_predict_seconds": seconds}


def _cell(rows: list[dict], key: str) -> str:
    values = [r[key] for r in rows]
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "-"


def markdown(report: dict) -> str:
    p = report["protocol"]
    methods = list(dict.fromkeys(r["method"] for r in report["rows"]))
    lines = ["# How many labelled Cora models a learned ranker needs (NAS-Bench-Graph, features that cost nothing)", "",
             f"- {p['archs']:,} models; fitted on N models' {p['label']}, {p['draws']} draws per N, measured on every "
             f"model not drawn against {p['metric']} (and against {p['label']}, which a choice between rows may use)",
             f"- features: {p['features']} ({p['count_params_seconds_per_model'] * 1000:.0f} ms a model to count)",
             f"- `{p['command']}`, {p['machine']}, torch {p['torch']}, {p['date']}, {p['seconds'] / 60:.0f} min", "",
             f"Kendall tau against {p['metric']} (mean ± std over draws)", ""]
    table = [[m, *(_cell([r for r in report["rows"] if r["method"] == m and r["num_labelled"] == n], "kendall_tau")
                   for n in p["labelled"])] for m in methods]
    lines.append(markdown_table(["model", *(f"N={n}" for n in p["labelled"])], table, "l" + "r" * len(p["labelled"])))
    lines += ["", f"Kendall tau against {p['label']} (the same fits)", ""]
    table = [[m, *(_cell([r for r in report["rows"] if r["method"] == m and r["num_labelled"] == n],
                         "valid_kendall_tau") for n in p["labelled"])] for m in methods]
    lines.append(markdown_table(["model", *(f"N={n}" for n in p["labelled"])], table, "l" + "r" * len(p["labelled"])))
    lines += ["", f"Beside them, over every model, against {p['metric']}", ""]
    lines.append(markdown_table(["ranking", "Kendall tau", "Spearman", "P@top-10 %"],
                                [[name, f"{m['kendall_tau']:.3f}", f"{m['spearman']:.3f}",
                                  f"{m['precision_at_top_10pct']:.3f}"] for name, m in report["ceilings"].items()],
                                "lrrr"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
