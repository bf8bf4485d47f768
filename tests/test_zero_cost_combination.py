"""scripts/zero_cost_combination.py on a made-up cache of four NB201 classes: costs, scores, taus and the choice
computed as its docstring defines them (values chosen so the taus can be counted by hand)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from nasframe.core.space import DataSpec
from nasframe.evaluation.zero_cost.combine import combine_population
from search_spaces.nb201 import NB201Space

ARCHS = ["|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|",
         "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|",
         "|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_1x1~2|",
         "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"]
PARAMS, SYNFLOW = [1.0, 2.0, 3.0, 4.0], [4.0, 1.0, 2.0, 3.0]  # ranks / 4: (1, 2, 3, 4) / 4 and (4, 1, 2, 3) / 4
TRUTH = [90.0, 80.0, 85.0, 95.0]  # true order: B < C < A < D


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("zero_cost_combination")


def _write(folder: Path, name: str, rows: list[dict], seconds: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"values_{name}.jsonl").write_text("".join(
        json.dumps({"arch": a, "values": v, "seconds": seconds}) + "\n" for a, v in zip(ARCHS, rows)))


def test_costs_scores_taus_and_choice(script, tmp_path: Path) -> None:
    _write(tmp_path, "params", [{"params": v} for v in PARAMS], 0.01)
    _write(tmp_path, "synflow", [{"synflow": v} for v in SYNFLOW], 0.6)
    _write(tmp_path, "flops", [{"flops": v} for v in PARAMS], 0.2)
    _write(tmp_path, "az_nas", [{"az_expressivity": v, "az_progressivity": -v, "az_trainability": v, "az_complexity": v}
                                for v in PARAMS], 1.0)
    passes = script.load_passes(tmp_path)
    assert script.seconds_per_class(["params", "synflow"], passes) == pytest.approx(0.61)
    assert script.seconds_per_class(["flops", "synflow"], passes) == pytest.approx(0.8)
    assert script.seconds_per_class(["az_expressivity", "az_trainability", "flops"], passes) == pytest.approx(1.0)

    space = NB201Space(DataSpec(3, (32, 32), 10), channels=16, cells_per_stage=5)
    values = {c: {space.format(k): v for k, v in d.items()} for c, d in script.load_values(tmp_path, space).items()}
    classes = [space.format(space.canonical(space.parse(a))) for a in ARCHS]
    result = script.analyse(values, passes, classes, {"cifar10_test": np.array(TRUTH)}, "cifar10_test",
                            candidates=("params", "synflow"), max_members=2, budget=0.55, split_seeds=())
    rows = {(tuple(r["members"]), r["how"]): r for r in result["rows"]}
    assert result["combinations_evaluated"] == 4  # params, synflow, and the pair by both combinations

    # log-rank sum: A log(1/4 * 4/4), B log(2/4 * 1/4), C log(3/4 * 2/4), D log(4/4 * 3/4): order B < A < C < D,
    # against the true B < C < A < D: one discordant pair (A, C) of six -> tau (5 - 1) / 6
    log_rank = rows[(("params", "synflow"), "log_rank")]
    assert log_rank["kendall_tau"] == pytest.approx(4 / 6)
    scores = script.Ranked({m: np.array([values[m][c] for c in sorted(classes)]) for m in values}).scores(
        ("params", "synflow"), "log_rank")
    population = [{m: values[m][c] for m in ("params", "synflow")} for c in sorted(classes)]
    assert scores == pytest.approx(combine_population(population, ("params", "synflow")))
    # rank mean: A 5/4, B 3/4, C 5/4, D 7/4: A and C tie, the other five pairs concordant -> tau-b 5 / sqrt(5 * 6)
    rank_mean = rows[(("params", "synflow"), "rank")]
    assert rank_mean["kendall_tau"] == pytest.approx(5 / math.sqrt(30))
    assert rows[(("params",), "log_rank")]["kendall_tau"] == pytest.approx(2 / 6)  # A, C before B: 4 - 2 of 6
    assert rank_mean["seconds_per_class"] == pytest.approx(0.61) and rank_mean["num_archs"] == 4
    assert rank_mean["precision_at_top_10pct"] == 1.0  # top 1 of 4: D under both

    # best at any cost: the rank mean of the pair; within 0.55 s per class only params (synflow alone costs 0.6)
    assert result["chosen"] == {"any_cost": "rank mean: params + synflow", "within_budget": "params"}
    assert rank_mean["chosen"] == ["any_cost"] and rows[(("params",), "log_rank")]["chosen"] == ["within_budget"]


def test_a_class_counts_once_per_cell_and_halves_split_by_class(script) -> None:
    values = {"params": {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}, "synflow": {"a": 4.0, "b": 1.0, "c": 2.0}}
    passes = {"params": {"seconds": 0.01, "components": ["params"]}, "synflow": {"seconds": 0.1, "components": ["synflow"]}}
    cells = ["a", "a", "b", "c", "d", "e"]  # two cells of class a; d not scored by synflow, e by nothing
    result = script.analyse(values, passes, cells, {"cifar10_test": np.arange(6.0)}, "cifar10_test",
                            candidates=("params", "synflow"), max_members=2, split_seeds=(0,))
    rows = {(tuple(r["members"]), r["how"]): r for r in result["rows"]}
    assert rows[(("params",), "log_rank")]["num_archs"] == 5
    assert rows[(("params", "synflow"), "log_rank")]["num_archs"] == 4
    assert rows[(("params", "synflow"), "log_rank")]["num_classes"] == 3
    (split,) = result["split_half"]
    assert split["seed"] == 0 and split["held_out_cells"] in (2, 3)  # two of the four classes, with their cells
