"""Latency-constrained and multi-objective (accuracy / latency) evolutionary selection."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from nasframe.core.space import DataSpec
from nasframe.errors import ConfigError
from nasframe.hardware.predictor import LatencyPredictor, LatencyTableError, PredictorKey
from nasframe.selection.constraints import LatencyBudget, load_latency_budget
from nasframe.selection.evolutionary import EvolutionarySearch
from nasframe.selection.pareto import crowding_distance, dominates, non_dominated_fronts, nsga2_best, pareto_front
from test_cli import TINY, nasframe

DIGITS = DataSpec(in_channels=1, input_size=(8, 8), num_classes=10)


def brute_force_front(scores, latencies) -> set[int]:
    n = len(scores)
    return {i for i in range(n)
            if not any(dominates(scores[j], latencies[j], scores[i], latencies[i]) for j in range(n) if j != i)}


def test_fronts_on_a_hand_example():
    #           0    1    2    3    4    5
    scores = [90, 80, 70, 85, 60, 90]
    latency = [10, 5, 1, 10, 2, 10]
    # front 0: 0 and 5 (equal, not dominating each other), 1, 2; front 1: 3 (dominated by 0), 4 (by 2)
    assert non_dominated_fronts(np.array(scores), np.array(latency)) == [[0, 1, 2, 5], [3, 4]]
    assert pareto_front(np.array(scores), np.array(latency)) == [2, 1, 0, 5]


@pytest.mark.parametrize("seed", range(5))
def test_every_front_is_the_pareto_front_of_what_remains(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 10, 40).astype(float)  # ties on purpose
    latency = rng.integers(0, 10, 40).astype(float)
    fronts = non_dominated_fronts(scores, latency)
    assert sorted(itertools.chain(*fronts)) == list(range(40))
    remaining = list(range(40))
    for front in fronts:
        expected = {remaining[k] for k in brute_force_front(scores[remaining], latency[remaining])}
        assert set(front) == expected
        remaining = [i for i in remaining if i not in expected]


def test_crowding_distance_by_hand():
    scores = np.array([1.0, 2.0, 4.0, 8.0])
    latency = np.array([8.0, 4.0, 2.0, 1.0])
    distance = crowding_distance(scores, latency)
    # inner points: (gap in score)/7 + (gap in latency)/7
    assert np.isinf(distance[0]) and np.isinf(distance[3])
    assert distance[1] == pytest.approx((4 - 1) / 7 + (8 - 2) / 7)
    assert distance[2] == pytest.approx((8 - 2) / 7 + (4 - 1) / 7)


def test_nsga2_best_fills_whole_fronts_then_the_least_crowded():
    scores = np.array([10.0, 9.0, 8.0, 7.0, 5.0, 4.0])
    latency = np.array([10.0, 9.0, 8.0, 7.0, 9.5, 9.6])  # 0..3 are the front; 4, 5 are dominated
    assert sorted(nsga2_best(scores, latency, 4)) == [0, 1, 2, 3]
    # 3 of the 4-point front: both extremes (infinite distance) and one inner point
    chosen = nsga2_best(scores, latency, 3)
    assert {0, 3} <= set(chosen) and len(chosen) == 3
    assert sorted(nsga2_best(scores, latency, 5)) == [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def space():
    from search_spaces.nb201 import NB201Space

    return NB201Space(DIGITS, channels=4, cells_per_stage=1)


def additive_predictor(space, device: str = "synthetic") -> LatencyPredictor:
    """Each op's cost: none 0, skip 0.1, pool 0.5, conv1x1 1, conv3x3 3 ms (per edge), plus 2 ms fixed."""
    costs = {"none": 0.0, "skip_connect": 0.1, "avg_pool_3x3": 0.5, "nor_conv_1x1": 1.0, "nor_conv_3x3": 3.0}
    terms = [costs[option] for choice in space.choices for option in choice.options]
    key = PredictorKey(device=device, batch_size=1, torch_version="test", space=space.describe())
    return LatencyPredictor(space.choices, np.array(terms), 2.0, key)


def conv_count_score(arch) -> float:
    """A stand-in accuracy that grows with the convolutions, i.e. with latency: a real trade-off."""
    return sum({"nor_conv_3x3": 3.0, "nor_conv_1x1": 2.0, "avg_pool_3x3": 0.5}.get(op, 0.0) for op in arch.values())


def test_latency_budget_predicts_and_rejects(space):
    budget = LatencyBudget(additive_predictor(space), max_ms=5.0)
    arch = space.parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|")
    assert budget.latency(arch) == pytest.approx(2.0 + 3.0 + 0.1 + 0.5)
    assert not budget(arch)
    fast = space.parse("|skip_connect~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|")
    assert budget(fast) and budget.latencies([arch, fast]).tolist() == pytest.approx([5.6, 2.7])
    assert "predicted latency <= 5 ms on synthetic" == budget.describe()
    with pytest.raises(ConfigError, match="max_latency_ms must be > 0"):
        LatencyBudget(additive_predictor(space), max_ms=0)


def test_evolution_under_a_budget_never_evaluates_a_slower_arch(space):
    budget = LatencyBudget(additive_predictor(space), max_ms=8.0)
    selector = EvolutionarySearch(population_size=10, generations=5, parents=5)
    result = selector.select(space, conv_count_score, constraints=[budget], seed=0)
    assert len(result.history) > 20
    assert all(budget.latency(r.arch) <= 8.0 for r in result.history)
    assert budget.latency(result.arch) <= 8.0 and result.score == max(r.score for r in result.history)


def test_pareto_mode_records_the_front_of_everything_evaluated(space):
    budget = LatencyBudget(additive_predictor(space))  # no budget: latencies only
    selector = EvolutionarySearch(population_size=12, generations=6, parents=6, objective="pareto")
    result = selector.select(space, conv_count_score, constraints=[budget], seed=1)
    front = result.details["pareto_front"]
    scores = np.array([r.score for r in result.history])
    latency = np.array([budget.latency(r.arch) for r in result.history])
    expected = brute_force_front(scores, latency)
    assert {(p["score"], p["latency_ms"]) for p in front} == {(scores[i], latency[i]) for i in expected}
    assert [p["latency_ms"] for p in front] == sorted(p["latency_ms"] for p in front)
    assert result.score == max(scores)  # the returned arch is the most accurate
    json.dumps(result.to_dict(space))  # the front is part of selection.json


def test_pareto_parents_spread_over_the_front_better_than_accuracy_parents(space):
    """NSGA-II parents keep fast archs alive: the evaluated archs reach lower latencies than accuracy-only
    evolution from the same start, which breeds only from the most accurate (slowest) archs."""
    budget = LatencyBudget(additive_predictor(space))
    settings = dict(population_size=12, generations=8, parents=6)
    pareto = EvolutionarySearch(**settings, objective="pareto").select(space, conv_count_score, constraints=[budget],
                                                                        seed=2)
    plain = EvolutionarySearch(**settings).select(space, conv_count_score, constraints=[budget], seed=2)

    def last_generation_latency(result):
        last = max(r.round for r in result.history)
        return np.median([budget.latency(r.arch) for r in result.history if r.round == last])

    assert last_generation_latency(pareto) < last_generation_latency(plain)


def test_pareto_without_latencies_is_refused(space):
    selector = EvolutionarySearch(objective="pareto")
    with pytest.raises(ConfigError, match="objective=pareto needs predicted latencies"):
        selector.select(space, conv_count_score)
    with pytest.raises(ConfigError, match="selector.objective"):
        EvolutionarySearch(objective="latency")


def test_a_table_of_another_space_is_refused(space, tmp_path):
    from search_spaces.nb201 import NB201Space

    other = NB201Space(DIGITS, channels=8, cells_per_stage=1)
    path = additive_predictor(other).save(tmp_path / "table.json")
    with pytest.raises(LatencyTableError, match="built for another space"):
        load_latency_budget(space, path, 5.0)
    assert load_latency_budget(other, path, 5.0).max_ms == 5.0


def test_cli_pareto_search_under_a_budget(tmp_path, space):
    table = additive_predictor(space).save(tmp_path / "table.json")
    run_dir = tmp_path / "run"
    proc = nasframe("search", *TINY, "selector.objective=pareto", f"constraints.latency_table={table}",
                    "constraints.max_latency_ms=9", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads((run_dir / "outcome.json").read_text())
    assert outcome["predicted_latency_ms"] <= 9.0
    selection = json.loads((run_dir / "selection.json").read_text())
    assert selection["details"]["pareto_front"]
    assert all(p["latency_ms"] <= 9.0 for p in selection["details"]["pareto_front"])
    report = (run_dir / "report.md").read_text()
    assert "predicted latency <= 9 ms on synthetic" in report and "Pareto front" in report


@pytest.mark.parametrize("args, message", [
    (["constraints.max_latency_ms=5"], "constraints.max_latency_ms needs constraints.latency_table"),
    (["selector.objective=pareto"], "objective=pareto needs predicted latencies"),
    (["constraints.latency_table=/nonexistent/table.json"], "no latency table at /nonexistent/table.json"),
])
def test_cli_latency_errors_are_one_line_before_training(tmp_path, args, message):
    proc = nasframe("search", *TINY, *args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
