"""A learned combination of zero-cost proxies: ranking quality against the number of labelled archs.

    python scripts/zero_cost_learned.py                  # NAS-Bench-201, after zero_cost_ranking.py --target nb201
    python scripts/zero_cost_learned.py --target cora    # NAS-Bench-Graph Cora, after ... --target cora
    python scripts/zero_cost_learned.py --values results/zero_cost_assembly_nb201 --out results/zero_cost_assembly_nb201
                                                         # every NB201 cell, with the values zero_cost_assembly.py kept

For N = 10, 25, 50, 100, 400 labelled archs and 5 draws each (seeds 0-4; ``--labelled``, ``--draws`` and
``--first-draw`` change them, e.g. fresh draws that a choice made on draws 0-4 never saw): draw N archs uniformly from those every
proxy has scored, fit a model on their proxy values (as ranks) and, optionally, a one-hot encoding of the arch
and, optionally, the cell-structure features (``search_spaces.nb201.CELL_FEATURES`` of a NAS-Bench-201
cell; on NAS-Bench-Graph the space's ``structure_features``), with their label, and rank the archs not drawn. Metrics are over those archs only, less the
isomorphic twins of the drawn ones (the same network: the model never sees the archs it is scored on).

Labels and checks per target: NAS-Bench-201 has no validation column here (``../shared/data/nb201``), so the
label is CIFAR-10 test accuracy and the check is CIFAR-100 and ImageNet16-120 (never tuned on); NAS-Bench-Graph
has both, so on Cora the label is validation accuracy and the metrics are against test accuracy (fit on valid,
report test). Models (``MODELS``): gradient-boosted trees, ridge regression and a pairwise-logistic linear score,
with and without the arch encoding and the cell features, and the mean rank of the trees and the pairwise score
(on NAS-Bench-201 the first row: above the trees alone at every N on CIFAR-10, the best row at every N but 25),
and the encoding with #params as the only proxy (what the costly proxies add); the zero-shot rows of the same
archs (the best single proxies, AZ-NAS's log-rank sum) are given beside them. With ``--values`` pointing at
another evaluator's values, components carry that evaluator's settings (``zero_cost_assembly_nb201``: synflow
is the calibrated one, AZ-NAS and jacov at batch 16).
Writes ``<out>/zero_cost_learned.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import torch

from nasframe.evaluation.ranking import ranking_metrics
from nasframe.evaluation.surrogate import ProxySurrogate, has_structure
from nasframe.evaluation.zero_cost.combine import combine_population
from nasframe.markdown import markdown_table

from zero_cost_ranking import COMBINATIONS, TARGETS, load_values  # scripts/ is on the path when a script runs

LABELLED = (10, 25, 50, 100, 400)
DRAWS = 5
MIN_SCORED = 200  # cells a draw must leave to be scored on
#: row -> (model, arch encoding, cell features, proxies: None for every scored one); the first row is the one to
#: use on NAS-Bench-201 (see the docstring); the "#params only" rows ask what the costly proxies add to the encoding
MODELS = {"gbt+pairwise + arch encoding + cell features": ("gbt+pairwise", True, True, None),
          "pairwise + cell features": ("pairwise", False, True, None), "pairwise": ("pairwise", False, False, None),
          "gbt + arch encoding + cell features": ("gbt", True, True, None),
          "gbt + arch encoding": ("gbt", True, False, None), "gbt": ("gbt", False, False, None),
          "ridge + arch encoding": ("ridge", True, False, None), "ridge": ("ridge", False, False, None),
          "gbt + arch encoding, #params only": ("gbt", True, False, ("params",)),
          "ridge + arch encoding, #params only": ("ridge", True, False, ("params",))}
#: target -> (label the models are fitted on, the metric the ranking is measured against, check columns, title)
SETTINGS = {
    "nb201": ("cifar10_test", "cifar10_test", ("cifar100_test", "imagenet16_120_test"), "NAS-Bench-201"),
    "cora": ("cora_valid", "cora_test", ("cora_valid",), "NAS-Bench-Graph, Cora"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=sorted(SETTINGS), default="nb201")
    parser.add_argument("--values", type=Path, default=None, help="default: results/zero_cost_<target>")
    parser.add_argument("--out", type=Path, default=None, help="default: results/zero_cost_<target>")
    parser.add_argument("--labelled", type=int, nargs="+", default=list(LABELLED))
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--first-draw", type=int, default=0,
                        help="seed of the first draw; other than 0, the files are named zero_cost_learned_draws<A>-<B>")
    args = parser.parse_args()
    folder = Path(f"results/zero_cost_{args.target}")
    values_dir, out = args.values or folder, args.out or folder
    label, primary, checks, title = SETTINGS[args.target]
    target = TARGETS[args.target](torch.device("cpu"))
    space = target.space
    values = load_values(values_dir, space)  # component -> {canonical class: value}
    components = sorted(values)
    scored = [i for i, a in enumerate(target.archs) if all(space.canonical(a) in values[c] for c in components)]
    archs = [target.archs[i] for i in scored]  # each arch keeps its own truth (isomorphs differ in NB201's table)
    classes = [space.canonical(a) for a in archs]
    per_arch = [{c: values[c][cls] for c in components} for cls in classes]
    truths = {t: np.asarray(v)[scored] for t, v in target.truths.items()}
    models = {name: spec for name, spec in MODELS.items() if has_structure(space) or not spec[2]}
    rows = []
    started = time.perf_counter()
    draws = range(args.first_draw, args.first_draw + args.draws)
    for n in args.labelled:
        for draw in draws:
            rng = np.random.default_rng(draw)
            chosen = rng.choice(len(archs), size=n, replace=False)
            seen = {classes[i] for i in chosen}  # an isomorphic twin of a labelled arch is the same network:
            rest = np.array([i for i in range(len(archs)) if classes[i] not in seen])  # never scored on it
            if len(rest) < MIN_SCORED:
                continue  # too few archs left to measure a ranking: the row stays empty until more are scored
            for method, (model, encode, structure, subset) in models.items():
                surrogate = ProxySurrogate(space, subset or components, per_arch, model, encode,  # ranks among all
                                           seed=draw, cell_features=structure)
                surrogate.fit([archs[i] for i in chosen], [per_arch[i] for i in chosen], truths[label][chosen])
                predicted = surrogate.predict([archs[i] for i in rest], [per_arch[i] for i in rest])
                rows.append(_row(f"learned: {method}", draw, n, predicted, truths, rest, primary))
            for name, combo in [*((c, (c,)) for c in components), *COMBINATIONS.items()]:
                if all(c in components for c in combo):
                    scores = np.array(combine_population([per_arch[i] for i in rest], combo)) if len(combo) > 1 \
                        else np.array([per_arch[i][combo[0]] for i in rest])
                    rows.append(_row(f"zero-shot: {name}", draw, n, scores, truths, rest, primary))
    report = {"protocol": {"target": args.target, "title": title, "archs": len(archs),
                           "space_archs": len(target.archs), "components": components,
                           "labelled": list(args.labelled), "draws": args.draws,
                           "first_draw": args.first_draw, "label": label, "metric": primary,
                           "checks": list(checks), "command": "python " + " ".join(sys.argv),
                           # what the labels themselves give: the label metric as the ranking, over every arch
                           "label_ranking_tau": None if label == primary else ranking_metrics(
                               np.asarray(target.truths[label]), np.asarray(target.truths[primary]))["kendall_tau"],
                           "seconds": time.perf_counter() - started, "date": time.strftime("%Y-%m-%d")},
              "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    name = "zero_cost_learned" + (f"_draws{draws[0]}-{draws[-1]}" if args.first_draw else "")
    (out / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{name}.md").write_text(markdown(report))


def _row(method: str, draw: int, labelled: int, scores: np.ndarray, truths: dict, rest: np.ndarray,
         primary: str) -> dict:
    row = {"method": method, "seed": draw, "num_labelled": labelled, "num_archs": len(rest)}
    for truth, values in truths.items():
        metrics = ranking_metrics(scores, values[rest])
        row[truth] = metrics
        if truth == primary:
            row.update({"kendall_tau": metrics["kendall_tau"], "spearman": metrics["spearman"],
                        "found_true": metrics["true_accuracy_of_best_scored"]})
    return row


def markdown(report: dict) -> str:
    p = report["protocol"]
    checks, metric = p["checks"], p["metric"]
    lines = [f"# A learned combination of zero-cost proxies on {p['title']}", "",
             f"- {p['archs']} archs scored by every proxy ({', '.join(p['components'])}); labels: "
             f"{p['label']}; {p['draws']} draws per N (seeds {p.get('first_draw', 0)}-"
             f"{p.get('first_draw', 0) + p['draws'] - 1}); metrics on the archs not drawn",
             f"- `{p['command']}`, {p['date']}",
             *([f"- ceiling of a model fitted on {p['label']}: {p['label']} itself ranks all {p['space_archs']:,} archs "
                f"at tau {p['label_ranking_tau']:.3f} against {metric}"] if p["label_ranking_tau"] is not None else []),
             "",
             f"Kendall tau against {metric} (mean ± std over draws; check columns at N=100: "
             + ("never fitted on" if p["label"] not in checks else "the metric fitted on") + ")", ""]
    table = []
    methods = list(dict.fromkeys(r["method"] for r in report["rows"]))
    zero_shot = [m for m in methods if m.startswith("zero-shot")]
    best_zero = sorted(zero_shot, key=lambda m: -np.mean([r["kendall_tau"] for r in report["rows"] if r["method"] == m]))[:3]
    for method in [m for m in methods if m.startswith("learned")] + best_zero:
        cells = []
        for n in p["labelled"]:
            taus = [r["kendall_tau"] for r in report["rows"] if r["method"] == method and r["num_labelled"] == n]
            cells.append(f"{np.mean(taus):.3f} ± {np.std(taus):.3f}" if taus else "-")
        check = [r for r in report["rows"] if r["method"] == method and r["num_labelled"] == 100]
        for truth in checks:
            cells.append(f"{np.mean([r[truth]['kendall_tau'] for r in check]):.3f}" if check else "-")
        table.append([method, *cells])
    lines.append(markdown_table(["method", *(f"N={n}" for n in p["labelled"]), *(f"{c} tau (N=100)" for c in checks)],
                                table, "l" + "r" * (len(p["labelled"]) + len(checks))))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
