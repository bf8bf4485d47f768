"""The baselines of a selection: the largest arch meeting the constraints, random search on the same budget,
their report rows, and the largest-arch baseline of ``nasframe tabular``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nasframe.core.arch import Arch
from nasframe.core.space import DataSpec
from nasframe.data.paths import data_root
from nasframe.errors import ConfigError
from nasframe.selection.baselines import (
    BaselineRow,
    baseline_rows,
    find_largest,
    largest_arch,
    random_baseline,
    render_baselines,
)
from nasframe.selection.constraints import ParamBudget
from nasframe.selection.evolutionary import EvolutionarySearch
from search_spaces.darts import DARTSSpace
from search_spaces.mobilenet import MobileNetSpace
from search_spaces.nb201 import NB201Space
from test_cli import synthetic_nb201_table

ALL_3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NB201_TABLE = data_root() / "nb201" / "accuracy.csv"


def small_nb201():
    """A tiny NAS-Bench-201 space (channels 4, one cell per stage) restricted to 3^3 x 2^3 = 216 archs: more
    than find_largest enumerates by default, few enough to enumerate here (~10 ms per count)."""
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)
    names = [c.name for c in space.choices]
    return space.restrict({name: ["none", "nor_conv_1x1", "nor_conv_3x3"] if i < 3 else ["skip_connect", "nor_conv_3x3"]
                           for i, name in enumerate(names)})


def small_darts():
    """The DARTS space (normal + reduction cell, each node keeps exactly 2 inputs) at toy size, ops narrowed
    to none / sep_conv_3x3 / dil_conv_3x3 so that counting stays cheap."""
    space = DARTSSpace(DataSpec(3, (8, 8), 10), channels=2, layers=3)
    return space.restrict({c.name: ["none", "sep_conv_3x3", "dil_conv_3x3"] for c in space.choices})


def test_largest_nb201_arch_is_the_all_conv3x3_cell():
    space = NB201Space()  # the benchmark's networks: C=16, N=5, 32x32 inputs, 10 classes
    found = find_largest(space)
    assert space.format(found.arch) == ALL_3X3
    assert found.params == space.count_params(found.arch) == 1_531_546
    assert largest_arch(space) == found.arch


def test_largest_arch_of_a_space_ordered_by_size_is_exact():
    tiny = {"stem_channels": 8, "stage_channels": [8, 16], "stage_strides": [1, 2], "stage_se": [False, True],
            "stage_activation": ["relu", "hswish"], "head_channels": 32, "dropout": 0.0}
    space = MobileNetSpace(DataSpec(1, (8, 8), 10), **tiny)
    found = find_largest(space)
    assert found.exact and found.method == "largest()" and found.arch == space.largest()
    rng = np.random.default_rng(0)
    assert all(space.count_params(space.sample(rng)) <= found.params for _ in range(5))


def test_largest_arch_under_a_param_budget_is_the_enumerated_maximum():
    space = small_nb201()
    budget = ParamBudget(space, 0)  # one budget object, its limit moved below: the counts are made once
    counts = {arch: budget.params(arch) for arch in space.enumerate()}
    assert len(counts) == space.size == 216
    values = sorted(set(counts.values()))
    for limit in (values[len(values) // 4], values[len(values) // 2], values[-2] - 1):
        budget.max_params = limit
        exact = max(p for p in counts.values() if p <= limit)
        for seed in (0, 1):
            found = find_largest(space, [budget], seed)  # 216 > exhaustive_limit: the local search
            assert not found.exact and found.params == exact, (limit, seed)
            assert space.contains(found.arch) and budget(found.arch) and counts[found.arch] == exact
        enumerated = find_largest(space, [budget], exhaustive_limit=1000)
        assert enumerated.exact and enumerated.method == "enumeration" and enumerated.params == exact


def test_largest_arch_respects_the_darts_topology_rules():
    space = small_darts()
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(20)]
    sample_params = [space.count_params(a) for a in samples]

    found = find_largest(space)
    space.validate(found.arch)  # every node keeps exactly 2 incoming edges
    assert found.params == space.count_params(found.arch) > max(sample_params)

    budget = ParamBudget(space, int(np.median(sample_params)))
    within = max(p for p in sample_params if p <= budget.max_params)
    bounded = find_largest(space, [budget])
    space.validate(bounded.arch)
    assert budget(bounded.arch) and bounded.params >= within


def test_largest_arch_rejects_bad_search_settings():
    with pytest.raises(ConfigError, match="starts"):
        find_largest(small_nb201(), starts=0)


class CountingEvaluator:
    """A deterministic score (parameters, scaled) that records every call."""

    def __init__(self, space):
        self.space, self.calls = space, []

    def __call__(self, arch: Arch) -> float:
        self.calls.append(arch)
        return self.space.count_params(arch) / 1000.0


def test_random_baseline_spends_exactly_the_budget_through_the_evaluator_within_the_constraints():
    space = small_nb201()
    budget = ParamBudget(space, 12_000)
    evaluate = CountingEvaluator(space)
    result = random_baseline(space, evaluate, 15, [budget], seed=3)
    assert len(evaluate.calls) == len(set(evaluate.calls)) == len(result.history) == 15
    assert [r.arch for r in result.history] == evaluate.calls
    assert all(budget(a) for a in evaluate.calls)
    assert result.score == max(r.score for r in result.history) and result.arch in evaluate.calls
    assert result.details["evaluations"] == result.details["budget"] == 15
    again = random_baseline(space, CountingEvaluator(space), 15, [budget], seed=3)
    assert again.arch == result.arch  # seeded
    with pytest.raises(ConfigError, match="num_evaluations"):
        random_baseline(space, evaluate, 0)


def test_baseline_rows_and_their_markdown_section():
    space = small_nb201()
    budget = ParamBudget(space, 15_000)
    evaluate = CountingEvaluator(space)
    evolution = EvolutionarySearch(population_size=4, generations=2)
    selected = evolution.select(space, evaluate, constraints=[budget], seed=0)
    evaluate.calls.clear()
    rows = baseline_rows(space, evaluate, selected, [budget], seed=0, true_accuracy=lambda arch: 50.0,
                         selected_label="selected (evolutionary)")
    pick, largest, randomly = rows
    assert [r.label for r in rows] == ["selected (evolutionary)", "largest arch meeting the constraints",
                                       f"random search, {len(selected.history)} evaluations"]
    assert len(evaluate.calls) == 1 + len(selected.history)  # the largest arch once, random search its budget
    assert [(r.kind, r.evaluations) for r in rows] == [("selected", None), ("largest", None),
                                                       ("random search", len(selected.history))]
    assert pick.native == space.format(selected.arch) and pick.score == selected.score
    assert largest.params == find_largest(space, [budget]).params >= max(pick.params, randomly.params)
    assert largest.score == pytest.approx(largest.params / 1000.0)
    assert all(r.params <= 15_000 and r.true_accuracy == 50.0 and r.test_accuracy is None for r in rows)
    assert BaselineRow(**largest.to_dict()) == largest

    markdown = render_baselines(rows, [budget], truth_metric="cifar10_test")
    lines = markdown.splitlines()
    assert lines[0] == "## Beside the trivial baselines" and "params <= 15,000" in markdown
    assert "| found by | arch | evaluator score | parameters | true accuracy (cifar10_test) |" in lines
    assert "test accuracy |" not in markdown  # no row has one
    table = [line for line in lines if line.startswith("| ") and "`" in line]
    assert len(table) == 3
    for line, row in zip(table, rows):
        assert line.startswith(f"| {row.label} | ") and f"{row.params:,}" in line and "50.00%" in line
        assert line.replace("\\|", "").count("|") == 6  # the arch's own '|' escaped: 5 columns
        assert row.native.replace("|", "\\|") in line


@pytest.mark.parametrize("table", ["synthetic", "real"])
def test_tabular_report_shows_the_largest_arch_and_names_random_search_the_baseline(tmp_path, table):
    from hydra import compose, initialize_config_dir

    from nasframe.benchmarks.nb201 import NB201Benchmark
    from nasframe.benchmarks.tabular_search import run_tabular
    from nasframe.cli import CONFIG_DIR
    from nasframe.config import register_configs

    if table == "real" and not NB201_TABLE.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_TABLE}")
    path = synthetic_nb201_table(tmp_path / "table.csv") if table == "synthetic" else NB201_TABLE
    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("tabular", overrides=[f"benchmark.path={path}", "max_queries=12", "seeds=1"])
    markdown = run_tabular(cfg, tmp_path / "out")

    result = json.loads((tmp_path / "out/tabular.json").read_text())
    largest = result["baselines"]["largest_arch"]
    true_value = NB201Benchmark(path=str(path)).metric(ALL_3X3, "cifar10_test")
    assert largest["arch"] == ALL_3X3 and largest["params"] == 1_531_546
    assert largest["report_metric"] == largest["search_metric"] == true_value
    assert result["baselines"]["random_search"] == ["random"]
    assert set(result["selectors"]) == {"evolutionary", "random"}
    assert (tmp_path / "out/tabular.md").read_text() == markdown
    assert f"| largest arch (baseline, no queries) | {true_value:.2f} |" in markdown.splitlines()
    assert "| random (baseline: random search) |" in markdown and "| evolutionary |" in markdown
    assert f"`{ALL_3X3}` (1,531,546 parameters" in markdown
    assert (tmp_path / "out/tabular.png").stat().st_size > 0
