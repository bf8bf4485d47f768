"""Predictor-guided search (selector=predictor_guided) and the benchmark evaluator (evaluator=benchmark)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nasframe.errors import ConfigError
from nasframe.selection import predictor_guided
from nasframe.selection.base import SelectorInputs
from nasframe.selection.constraints import ParamBudget
from nasframe.selection.predictor_guided import PredictorGuidedSearch
from search_spaces.nb201 import NB201Space

from test_cli import nasframe, synthetic_nb201_table


def conv_score(arch) -> float:
    """A learnable made-up accuracy: 3x3 convolutions count most, then 1x1, then skips."""
    weights = {"nor_conv_3x3": 3.0, "nor_conv_1x1": 2.0, "skip_connect": 0.5}
    return float(sum(weights.get(op, 0.0) for op in arch.values()))


class CountingProxies:
    """A stand-in for the zero-cost evaluator: one component (the number of convolutions), calls recorded."""

    components = ["convs"]

    def __init__(self) -> None:
        self.calls = []

    def component_values(self, arch):
        self.calls.append(arch)
        return {"convs": float(sum("conv" in op for op in arch.values()))}


@pytest.fixture
def space():
    return NB201Space()


def test_evaluates_the_initial_sample_then_per_round_archs_each_round_within_the_budget(space):
    selector = PredictorGuidedSearch(num_queries=34, initial=10, per_round=8, candidates=40, proxy=[])
    result = selector.select(space, conv_score, seed=0)
    rounds = [r.round for r in result.history]
    assert len(result.history) == 34 and rounds == [0] * 10 + [1] * 8 + [2] * 8 + [3] * 8
    classes = [space.canonical(r.arch) for r in result.history]
    assert len(set(classes)) == 34 and all(r.arch == c for r, c in zip(result.history, classes))  # each class once
    assert result.score == max(r.score for r in result.history)  # the pick: the best arch evaluated
    assert [r["pool"] for r in result.details["rounds"]] == [40, 40, 40]
    assert PredictorGuidedSearch(num_queries=34, initial=10, proxy=[]).select(space, conv_score, seed=0,
                                                                             max_queries=15).history[-1].query == 15


def test_each_round_evaluates_the_highest_predicted_archs_of_the_pool(space, monkeypatch):
    """With the whole space as the pool and a surrogate that predicts a known function, round 1 evaluates exactly
    the top per_round classes by that function among those not evaluated yet."""

    class KnownSurrogate:
        def __init__(self, *args, **kwargs):
            pass

        def fit(self, *args):
            pass

        def predict(self, archs, values):
            return np.array([conv_score(a) - 0.01 * int(a["edge_1_0"] == "skip_connect") for a in archs])

    monkeypatch.setattr(predictor_guided, "ProxySurrogate", KnownSurrogate)
    result = PredictorGuidedSearch(num_queries=15, initial=5, per_round=10, candidates=0, proxy=[]).select(
        space, conv_score, seed=3)
    first = {r.arch for r in result.history if r.round == 0}
    rest = [a for a in dict.fromkeys(space.canonical(a) for a in space.enumerate()) if a not in first]
    expected = sorted(rest, key=lambda a: -(conv_score(a) - 0.01 * int(a["edge_1_0"] == "skip_connect")))[:10]
    assert [r.arch for r in result.history if r.round == 1] == expected


def test_guidance_beats_random_search_with_as_many_evaluations(space):
    """On a learnable function the surrogate's choice of what to evaluate must pay: over 5 seeds the best of 40
    guided evaluations beats the best of 40 uniform ones."""
    from nasframe.selection.random_search import RandomSearch

    guided = [PredictorGuidedSearch(num_queries=40, proxy=[], model="ridge").select(space, conv_score, seed=s).score
              for s in range(5)]
    uniform = [RandomSearch(num_samples=40).select(space, conv_score, seed=s).score for s in range(5)]
    assert np.mean(guided) > np.mean(uniform)
    assert max(guided) == 18.0  # every edge a 3x3 convolution, the optimum of conv_score


def test_proxies_are_features_and_a_missing_source_is_refused(space):
    proxies = CountingProxies()
    selector = PredictorGuidedSearch(num_queries=20, candidates=20, proxy=["params"])
    result = selector.select(space, conv_score, seed=0, inputs=SelectorInputs(proxies=proxies))
    assert result.details["features"] == ["convs"] and result.details["proxy_scored_archs"] == len(set(proxies.calls))
    assert len(proxies.calls) == len(set(proxies.calls))  # each arch scored once
    assert selector.proxy_config().proxy == ["params"] and selector.proxy_config().batch_size == 16
    with pytest.raises(ConfigError, match="selector.proxy=\\[\\]"):
        selector.select(space, conv_score, seed=0)
    assert PredictorGuidedSearch(proxy=[]).proxy_config() is None


def test_constraints_hold_for_every_evaluated_arch(space):
    budget = ParamBudget(space, 500_000)
    result = PredictorGuidedSearch(num_queries=30, candidates=20, proxy=[]).select(space, conv_score, seed=1,
                                                                                   constraints=[budget])
    assert all(space.count_params(r.arch) <= 500_000 for r in result.history)


@pytest.mark.parametrize("settings, message", [
    ({"initial": 1}, "initial >= 2"), ({"candidates": 5, "per_round": 10}, "at least per_round"),
    ({"model": "xgboost"}, "not one of"), ({"mutation_prob": 0}, "mutation_prob"),
])
def test_bad_settings_are_refused_by_name(settings, message):
    with pytest.raises(ConfigError, match=message):
        PredictorGuidedSearch(**settings)


def test_search_with_the_benchmark_evaluator_reports_random_search_with_as_many_evaluations(tmp_path):
    table = synthetic_nb201_table(tmp_path / "table.csv")
    run_dir = tmp_path / "run"
    proc = nasframe("search", "evaluator=benchmark", "benchmark=nb201", f"benchmark.path={table}",
                    "selector=predictor_guided", "selector.proxy=[params]", "selector.num_queries=20",
                    "selector.candidates=20", "space.channels=4", "space.cells_per_stage=1",
                    f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cifar10_test recorded by nb201" in proc.stdout
    outcome = json.loads((run_dir / "outcome.json").read_text())
    assert outcome["evaluator"] == "benchmark" and outcome["archs_evaluated"] == 20
    rows = {r["label"]: r for r in outcome["baselines"]["rows"]}
    assert set(rows) == {"selected", "largest arch", "random search, 20 evaluations"}
    assert rows["selected"]["score"] == rows["selected"]["true_accuracy"]  # the score is the table's accuracy
    selection = json.loads((run_dir / "selection.json").read_text())
    assert selection["details"]["features"] == ["params"]
    assert selection["details"]["evaluator"] == {"evaluator": "benchmark", "benchmark": "nb201",
                                                 "metric": "cifar10_test"}
    assert "surrogate over the proxies params" in (run_dir / "report.md").read_text()


def test_the_benchmark_evaluator_needs_a_benchmark_and_cannot_rank_against_itself(tmp_path):
    missing = nasframe("search", "evaluator=benchmark", "selector=random", f"hydra.run.dir={tmp_path / 'a'}",
                       cwd=tmp_path)
    assert missing.returncode != 0 and "benchmark=nb201" in missing.stderr and "Traceback" not in missing.stderr
    ranked = nasframe("rank", "evaluator=benchmark", "space=nb201", "dataset=digits", f"hydra.run.dir={tmp_path / 'b'}",
                      cwd=tmp_path)
    assert ranked.returncode != 0 and "measured against" in ranked.stderr and "Traceback" not in ranked.stderr


def test_tabular_asks_for_the_data_set_of_a_guided_selector_s_proxies(tmp_path):
    table = synthetic_nb201_table(tmp_path / "table.csv")  # CIFAR-10 only (no real data needed)
    proc = nasframe("tabular", f"benchmark.path={table}", "+selectors.guided={name:predictor_guided}", "max_queries=20",
                    "seeds=1", f"out={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 't'}", cwd=tmp_path)
    assert proc.returncode != 0 and "dataset=cifar10" in proc.stderr and "Traceback" not in proc.stderr
    typo = nasframe("tabular", f"benchmark.path={table}", "+selectors.guided={name:predictor_guided,proxy:[synflw]}",
                    "dataset=digits", f"hydra.run.dir={tmp_path / 't2'}", cwd=tmp_path)
    assert typo.returncode != 0 and "selectors.guided.proxy: unknown proxy 'synflw'" in typo.stderr
    lacking = nasframe("tabular", f"benchmark.path={table}", "also_report=[cifar100_test]", "max_queries=5", "seeds=1",
                       f"out={tmp_path / 'o'}", f"hydra.run.dir={tmp_path / 't3'}", cwd=tmp_path)
    assert lacking.returncode != 0 and "cifar100_test" in lacking.stderr and "Traceback" not in lacking.stderr


def test_the_default_per_proxy_settings_are_dropped_with_their_proxy_and_a_typo_is_kept():
    assert PredictorGuidedSearch().proxy_config().per_proxy == {"synflow": {"bn": "calibrated", "input": "real"}}
    assert PredictorGuidedSearch(proxy=["params"]).proxy_config().per_proxy == {}
    typo = PredictorGuidedSearch(proxy=["params"], per_proxy={"synflw": {"bn": "eval"}})
    assert "synflw" in typo.proxy_config().per_proxy


def test_tabular_gives_a_guided_selector_its_proxies_and_reports_their_cost_and_held_out_metrics(tmp_path):
    from test_cli import synthetic_nb201_table

    table = synthetic_nb201_table(tmp_path / "table.csv")
    lines = table.read_text().splitlines()  # a second column, never searched on: the check of the picks
    table.write_text("\n".join([lines[0] + ",cifar100_test"]
                               + [f"{line},{float(line.rsplit(',', 1)[1]) - 20:.3f}" for line in lines[1:]]) + "\n")
    out = tmp_path / "out"
    proc = nasframe("tabular", f"benchmark.path={table}", "dataset=digits", "space.channels=4",
                    "space.cells_per_stage=1", "max_queries=20", "seeds=2", "also_report=[cifar100_test]",
                    "+selectors.guided={name:predictor_guided,proxy:[params],candidates:20}", f"out={out}",
                    f"hydra.run.dir={tmp_path / 't'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "tabular.json").read_text())
    guided = result["selectors"]["guided"]
    assert guided["proxies"]["components"] == ["params"] and len(guided["proxies"]["runs"]) == 2
    assert all(run["archs"] >= 20 and run["cpu_seconds"] > 0 for run in guided["proxies"]["runs"])
    for label, r in result["selectors"].items():  # the pick's held-out value is the table's, for every seed
        assert [v + 20 for v in r["also_report"]["cifar100_test"]] == pytest.approx(r["final_per_seed"], abs=2e-3)
    assert result["protocol"]["run"]["command"].startswith("nasframe tabular")
    rows = [r for r in result["rows"] if r["method"] == "guided"]  # one per seed, as every results/ row
    assert [r["seed"] for r in rows] == [0, 1] and all(r["num_archs"] == 20 for r in rows)
    assert [r["found_true"] for r in rows] == guided["final_per_seed"]
    markdown = (out / "tabular.md").read_text()
    assert "cifar100_test of the pick" in markdown and "proxy CPU s per run" in markdown


def test_a_bad_proxy_of_the_selector_fails_before_training(tmp_path):
    proc = nasframe("search", "selector=predictor_guided", "selector.proxy=[synflw]", "space.channels=4",
                    "space.cells_per_stage=1", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode != 0 and "selector.proxy: unknown proxy 'synflw'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run" / "checkpoint.pt").exists()  # nothing trained


def test_guided_search_through_a_trained_supernet_from_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    proc = nasframe("search", "space.channels=4", "space.cells_per_stage=1", "trainer.epochs=1",
                    "selector=predictor_guided", "selector.proxy=[params,synflow]", "selector.num_queries=14",
                    "selector.initial=4", "selector.per_round=5", "selector.candidates=20",
                    f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    selection = json.loads((run_dir / "selection.json").read_text())
    assert len(selection["history"]) == 14 and selection["details"]["features"] == ["params", "synflow"]
    assert [h["round"] for h in selection["history"]] == [0] * 4 + [1] * 5 + [2] * 5
    outcome = json.loads((run_dir / "outcome.json").read_text())
    assert outcome["archs_evaluated"] == 14 and outcome["test_accuracy"] is not None  # the supernet's path, exported


def test_equal_scores_leave_nothing_to_fit_and_the_round_goes_unguided(space):
    result = PredictorGuidedSearch(num_queries=20, initial=5, per_round=5, candidates=20, proxy=[]).select(
        space, lambda arch: 10.0, seed=0)  # every arch at chance: a pairwise model would have no pair to learn
    assert len(result.history) == 20 and {r["guided"] for r in result.details["rounds"]} == {False}


def test_a_space_smaller_than_the_initial_sample_ends_without_looping(space):
    tiny = space.restrict({c.name: ["none"] for c in space.choices[:5]})  # one edge free: a handful of classes
    result = PredictorGuidedSearch(num_queries=30, initial=10, proxy=[], max_tries=20).select(tiny, conv_score, seed=0)
    assert len(result.history) == len({tiny.canonical(a) for a in tiny.enumerate()})


def test_cell_features_default_to_the_space_s_own_and_are_refused_where_it_has_none():
    from nasframe.core.space import DataSpec
    from search_spaces.gnn_bench import GNNBenchSpace
    from search_spaces.mobilenet import MobileNetSpace

    graphs = GNNBenchSpace(DataSpec(8, (1, 1), 3), hidden=8)
    result = PredictorGuidedSearch(num_queries=20, candidates=20, proxy=[]).select(
        graphs, lambda arch: float(graphs.structure_features(arch)["max_depth"]), seed=0)
    assert result.details["cell_features"] is True  # NAS-Bench-Graph: ops by where they act
    images = MobileNetSpace(DataSpec(3, (32, 32), 10))
    assert PredictorGuidedSearch(num_queries=12, proxy=[]).select(
        images, lambda arch: 0.0, seed=0).details["cell_features"] is False
    with pytest.raises(ConfigError, match="selector.cell_features: space mobilenet has no cell-structure features"):
        PredictorGuidedSearch(num_queries=12, proxy=[], cell_features=True).select(images, lambda arch: 0.0, seed=0)
