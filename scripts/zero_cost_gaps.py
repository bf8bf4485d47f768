"""Where a proxy's Kendall tau on NAS-Bench-201 differs from the published one by more than 0.03: what it comes from.

    python scripts/zero_cost_gaps.py --threads 1                  # every check (46 min of scoring on one thread)
    python scripts/zero_cost_gaps.py --checks naswot_raw zico_accumulated --threads 2

``scripts/zero_cost_ranking.py`` (``results/zero_cost_nb201/``) scores each isomorphism class of NB201 cells once, with
each proxy's paper settings. The published taus it is compared with (the re-run in "Training-free Neural Architecture
Search through Variance of Knowledge of Deep Network Weights", VKDNW, CVPR 2025, Table 1) were scored another way:
every cell string as its own network (ops that reach no output included), with the re-run's own settings (Kaiming
fan-in initialisation, batches of 32), and for #params with the parameters of every op of the cell string. Each
check here changes one or more of these things and measures Kendall tau against CIFAR-10 test accuracy
(``cifar10_test``; Spearman beside it) on the same cells as "ours", the table's values:

- a *rescoring* check scores a uniform sample of cells (``--sample`` cells, ``--sample-seed``; ``scope`` "all": every
  cell) through :class:`ZeroCostEvaluator` with its changed settings (``canonical=false``: each cell string as its
  own network; ``init``, ``batch_size``; or another computation of the proxy: ZiCo with accumulated gradients);
- a *table* check reads only the table's values (jacov without its two large single-op classes; jacov with each
  class ranked once, against the mean accuracy of its cells).

The table's values are read from ``--table`` (its ``values_<proxy>.jsonl`` or committed ``.jsonl.gz`` snapshots);
a sampled cell whose class the table lacks is an error. Rescored values are kept in ``--cache`` (one JSON-lines file
per check, continued by a rerun). Writes ``--out``/``zero_cost_gaps.{json,md}``: one row per check with ``method``,
``seed`` (the sample's), ``num_archs``, ``kendall_tau``, ``spearman``, ours on the same archs and the difference.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasframe.evaluation.ranking import ranking_metrics
from nasframe.evaluation.zero_cost import ZeroCostConfig, ZeroCostEvaluator
from nasframe.evaluation.zero_cost.zico import ZiCo
from nasframe.markdown import markdown_table
from zero_cost_ranking import PUBLISHED_TAU, TARGETS, Target, load_values

TRUTH = "cifar10_test"  # the truth the published taus are against


class ZiCoAccumulated(ZiCo):
    """ZiCo as its official search script computes it (SLDGroup/ZiCo): the gradients are not zeroed between the
    two batches, so the second "batch gradient" is ``g_1 + g_2`` instead of ``g_2`` (the paper's definition, and
    :class:`~nasframe.evaluation.zero_cost.zico.ZiCo`, zero them)."""

    zero_between_batches = False  # ZiCo.describe says so, so its values are cached apart from the paper's


@dataclass(frozen=True)
class Rescore:
    """Score cells again through the evaluator, one way differing from the table's."""

    proxy: str
    what: str
    canonical: bool = True  # false: every cell string as its own network
    overrides: dict = field(default_factory=dict)  # ZeroCostConfig settings (init, batch_size, ...)
    replacement: type | None = None  # another computation of the proxy
    scope: str = "sample"  # sample | all


@dataclass(frozen=True)
class TableCheck:
    """Read the table's values another way (no scoring)."""

    proxy: str
    what: str
    kind: str  # without_single_op_classes | classes_once


KAIMING, BATCH_32 = {"init": "kaiming_fan_in"}, {"batch_size": 32}
CHECKS: dict[str, Rescore | TableCheck] = {
    "params_every_op": Rescore("params", "the parameters of every op of the cell string (as the benchmark counts)",
                               canonical=False, scope="all"),
    "naswot_raw": Rescore("naswot", "every cell string as its own network", canonical=False),
    "naswot_kaiming": Rescore("naswot", "Kaiming fan-in initialisation", overrides=KAIMING),
    "naswot_kaiming_32": Rescore("naswot", "Kaiming fan-in initialisation, batch 32",
                                 overrides={**KAIMING, **BATCH_32}),
    "naswot_raw_kaiming_32": Rescore("naswot", "raw cells, Kaiming fan-in, batch 32 (the re-run's way)",
                                     canonical=False, overrides={**KAIMING, **BATCH_32}),
    "jacov_without_single_op_classes": TableCheck(
        "jacov", "without the classes of a lone skip connection and a lone 1x1 convolution from input to output",
        "without_single_op_classes"),
    "jacov_classes_once": TableCheck("jacov", "each class ranked once, against its cells' mean accuracy",
                                     "classes_once"),
    "jacov_raw": Rescore("jacov", "every cell string as its own network", canonical=False),
    "jacov_kaiming": Rescore("jacov", "Kaiming fan-in initialisation (batch 64)", overrides=KAIMING),
    "jacov_kaiming_32": Rescore("jacov", "Kaiming fan-in initialisation, batch 32", overrides={**KAIMING, **BATCH_32}),
    "zico_32": Rescore("zico", "batch 32", overrides=BATCH_32),
    "zico_raw_kaiming_32": Rescore("zico", "raw cells, Kaiming fan-in (inherited from the proxies run before it), "
                                           "batch 32 (the re-run's way)", canonical=False,
                                   overrides={**KAIMING, **BATCH_32}),
    "zico_accumulated": Rescore("zico", "gradients accumulated between the two batches (official search script)",
                                replacement=ZiCoAccumulated),
}
#: the two large single-op classes that jacov scores far above their accuracy: one op on the edge input -> output
SINGLE_OP_CELLS = ("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
                   "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|")


def rescore(check: Rescore, name: str, target: Target, cells: list, cache: Path | None,
            device: torch.device) -> tuple[np.ndarray, float, float]:
    """Each cell's value scored the check's way, the median seconds one network took and the seconds of all (as
    measured when each was scored, also for values read back from the cache)."""
    config = ZeroCostConfig(proxy=check.proxy, canonical=check.canonical, seed=0,
                            cache_file=str(cache / f"values_{name}.jsonl") if cache else None, **check.overrides)
    evaluator = ZeroCostEvaluator(target.space, target.build_network, config, train=target.data.train,
                                  prepare=target.data.prepare, device=device,
                                  proxies=[check.replacement()] if check.replacement else ())
    values = np.array([evaluator.component_values(cell)[evaluator.components[0]] for cell in cells])
    return values, float(np.median(list(evaluator.seconds.values()))), evaluator.seconds_for(cells)


def table_values(table: dict, proxy: str, target: Target, class_of: dict, cells: list, where: Path) -> np.ndarray:
    """The table's value of each cell (its class's, ``class_of[cell]``)."""
    per_class = table.get(proxy)
    if not per_class:
        raise SystemExit(f"{where}: no values of {proxy} (run scripts/zero_cost_ranking.py --target nb201 first)")
    missing = [target.space.format(c) for c in cells if class_of[c] not in per_class]
    if missing:
        raise SystemExit(f"{where}: {len(missing)} of the cells have no {proxy} value there, e.g. {missing[0]}")
    return np.array([per_class[class_of[c]] for c in cells])


def table_check(check: TableCheck, target: Target, class_of: dict, ours: np.ndarray, truth: np.ndarray) -> dict:
    """Metrics of the table's values read the check's way, and ours (the table's values on all cells)."""
    space = target.space
    canonical = [class_of[c] for c in target.archs]
    if check.kind == "without_single_op_classes":
        left_out = {space.canonical(space.parse(s)) for s in SINGLE_OP_CELLS}
        keep = np.array([c not in left_out for c in canonical])
        return {"num_archs": int(keep.sum()), **ranking_metrics(ours[keep], truth[keep])}
    if check.kind == "classes_once":
        classes = list(dict.fromkeys(canonical))
        index = {c: i for i, c in enumerate(classes)}
        rows = np.array([index[c] for c in canonical])
        score = np.zeros(len(classes))
        score[rows] = ours  # one value per class
        mean_truth = np.bincount(rows, weights=truth) / np.bincount(rows)
        return {"num_archs": len(target.archs), "num_classes": len(classes), **ranking_metrics(score, mean_truth)}
    raise ValueError(f"unknown table check kind {check.kind!r}")


def run_checks(names: list[str], target: Target, class_of: dict, table: dict, table_path: Path, sample: list,
               cache: Path | None, device: torch.device, sample_seed: int) -> list[dict]:
    """One row per check; ``class_of``: each cell of the target -> its isomorphism class."""
    truth_all = target.truths[TRUTH]
    index = {cell: i for i, cell in enumerate(target.archs)}
    rows = []
    for name in names:
        check = CHECKS[name]
        row: dict[str, Any] = {"method": name, "proxy": check.proxy, "what": check.what,
                               "published_kendall_tau": PUBLISHED_TAU.get(check.proxy)}
        if isinstance(check, TableCheck):
            ours = table_values(table, check.proxy, target, class_of, target.archs, table_path)
            metrics = table_check(check, target, class_of, ours, truth_all)
            reference = ranking_metrics(ours, truth_all)
            row.update({"scope": "all cells, table values", "seed": None, **metrics})
        else:
            cells = target.archs if check.scope == "all" else sample
            truth = truth_all[[index[c] for c in cells]]
            values, seconds, total = rescore(check, name, target, cells, cache, device)
            metrics = ranking_metrics(values, truth)
            reference = ranking_metrics(table_values(table, check.proxy, target, class_of, cells, table_path), truth)
            row.update({"scope": "all cells" if check.scope == "all" else "sample", "canonical": check.canonical,
                        "settings": check.overrides, "seed": None if check.scope == "all" else sample_seed,
                        "num_archs": len(cells), "num_classes": len({class_of[c] for c in cells}),
                        "median_seconds_per_network": seconds, "scoring_seconds": total, **metrics})
        row.update({"ours_kendall_tau": reference["kendall_tau"], "ours_spearman": reference["spearman"],
                    "difference": row["kendall_tau"] - reference["kendall_tau"]})
        logging.info("%s: tau %.3f, ours on the same archs %.3f", name, row["kendall_tau"], row["ours_kendall_tau"])
        rows.append(row)
    return rows


def markdown(report: dict) -> str:
    p = report["protocol"]
    lines = ["# Gaps to the published Kendall taus on NAS-Bench-201 CIFAR-10, measured", "",
             f"- truth: {p['truth']}; ours: {p['ours']}",
             f"- sample: {p['sample']['cells']} cells ({p['sample']['classes']} isomorphism classes), seed "
             f"{p['sample']['seed']}; each rescoring: `ZeroCostEvaluator`, seed 0, the proxy's paper settings but for "
             "the changes named",
             f"- `{p['command']}` on {p['machine']}, torch {p['torch']}, {p['date']}", ""]
    table = [[r["method"], r["what"], r["scope"], f"{r['num_archs']:,}", r["kendall_tau"], r["ours_kendall_tau"],
              r["difference"], r["published_kendall_tau"], r["spearman"], r["ours_spearman"],
              r["scoring_seconds"] / 60 if "scoring_seconds" in r else None] for r in report["rows"]]
    lines.append(markdown_table(
        ["check", "what changes", "archs", "n", "tau", "ours, same archs", "difference", "published (all cells)",
         "Spearman", "ours Spearman", "scoring min"], table, "lllrrrrrrrr",
        formats=[None, None, None, None, ".3f", ".3f", "+.3f", None, ".3f", ".3f", ".1f"]))
    lines += ["", "scoring min: the networks' scoring time, each class (raw cells: each cell) once, as measured when "
                  "it was scored; a rerun reads the values back from its cache."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", nargs="*", default=list(CHECKS), help=f"of {', '.join(CHECKS)} (default: all)")
    parser.add_argument("--sample", type=int, default=600, help="cells rescored by a sample check")
    parser.add_argument("--sample-seed", type=int, default=1)
    parser.add_argument("--table", type=Path, default=Path("results/zero_cost_nb201"),
                        help="the values of scripts/zero_cost_ranking.py --target nb201")
    parser.add_argument("--cache", type=Path, default=Path("runs/zero_cost_gaps"), help="rescored values, continued")
    parser.add_argument("--out", type=Path, default=Path("results/zero_cost_nb201"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    unknown = [c for c in args.checks if c not in CHECKS]
    if unknown:
        parser.error(f"unknown check {unknown[0]!r}; known: {', '.join(CHECKS)}")
    if args.sample < 2:
        parser.error("--sample must be >= 2")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    target = TARGETS["nb201"](device)
    table = load_values(args.table, target.space)
    if args.sample > len(target.archs):
        parser.error(f"--sample {args.sample} is more than the {len(target.archs)} cells")
    picked = np.random.default_rng(args.sample_seed).choice(len(target.archs), args.sample, replace=False)
    sample = [target.archs[i] for i in sorted(picked)]  # uniform, without replacement
    class_of = {cell: target.space.canonical(cell) for cell in target.archs}  # once: seconds over all cells
    rows = run_checks(args.checks, target, class_of, table, args.table, sample, args.cache, device, args.sample_seed)
    report = {
        "protocol": {
            "truth": f"NB201 200-epoch {TRUTH} accuracy (mean over seeds)",
            "ours": f"the values of {args.table} (scripts/zero_cost_ranking.py: each class's canonical network, "
                    "the paper settings, seed 0) on the same archs",
            "sample": {"cells": len(sample), "classes": len({class_of[c] for c in sample}),
                       "seed": args.sample_seed},
            "published": "VKDNW (CVPR 2025) Table 1 re-run, all 15,625 cells",
            "command": "python " + " ".join(sys.argv),
            "machine": f"{platform.processor() or platform.machine()}, {args.threads} thread{'s' * (args.threads != 1)}"
                       if device.type == "cpu" else str(device),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        },
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "zero_cost_gaps.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "zero_cost_gaps.md").write_text(markdown(report))


if __name__ == "__main__":
    main()
