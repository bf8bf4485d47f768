"""Ranking metrics, the NAS-Bench-201 benchmark table, and the rank command."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nasframe.benchmarks.nb201 import NB201Benchmark
from nasframe.data.paths import data_root
from nasframe.errors import ConfigError, DataError, InvalidArchError
from nasframe.evaluation.ranking import ScoringStopped, precision_at_top, rank_archs, ranking_metrics, sample_archs
from nasframe.evaluation.score_store import ScoreStore
from search_spaces.nb201 import NB201Space

REAL_TABLE = data_root() / "nb201" / "accuracy.csv"


def test_metrics_on_hand_computed_cases():
    truth = np.arange(20, dtype=float)
    perfect = ranking_metrics(truth * 2 + 1, truth)
    assert perfect["kendall_tau"] == pytest.approx(1) and perfect["spearman"] == pytest.approx(1)
    assert perfect["precision_at_top_5pct"] == 1 and perfect["precision_at_top_10pct"] == 1
    assert perfect["true_accuracy_of_best_scored"] == 19 == perfect["best_true_accuracy_in_sample"]
    reverse = ranking_metrics(-truth, truth)
    assert reverse["kendall_tau"] == pytest.approx(-1) and reverse["precision_at_top_10pct"] == 0
    assert reverse["true_accuracy_of_best_scored"] == 0
    # one swap among 4: 5 concordant, 1 discordant pairs -> tau = (5 - 1) / 6
    assert ranking_metrics([1, 2, 4, 3], [1, 2, 3, 4])["kendall_tau"] == pytest.approx(4 / 6)


def test_precision_at_top_counts_the_overlap():
    truth = np.array([10, 9, 8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    scores = np.array([1, 10, 9, 0, 0, 0, 0, 0, 0, 0], dtype=float)  # top-2 scored = {1, 2}; true top-2 = {0, 1}
    assert precision_at_top(scores, truth, 0.2) == 0.5
    assert precision_at_top(scores, truth, 0.01) == 0.0  # k rounds up to 1: top scored {1} vs true {0}


def test_sample_archs_is_distinct_seeded_or_complete():
    space = NB201Space()
    a, b = sample_archs(space, 200, seed=3), sample_archs(space, 200, seed=3)
    assert a == b and len(set(a)) == 200 and sample_archs(space, 200, seed=4) != a
    assert len(sample_archs(space, 0, seed=0)) == 15_625


def test_a_ranking_in_time_slices_scores_each_arch_once(tmp_path):
    """Scores are kept as they come; a later ranking with the same fingerprint scores only the rest, a cut last
    line (a killed ranking) is dropped, and another fingerprint starts afresh."""
    space, path = NB201Space(), tmp_path / "scores.jsonl"
    archs = sample_archs(space, 6, seed=0)
    natives = [space.format(a) for a in archs]
    scored: list[str] = []

    def score(arch) -> float:
        scored.append(space.format(arch))
        return 50.0 + len(scored)

    def truth(native: str) -> float:
        return float(native.count("conv"))

    store = ScoreStore(path, {"weights": "w1"})
    for native in natives[:2]:  # an earlier slice scored two archs
        store.add(native, 10.0, 0.5)
    with pytest.raises(ScoringStopped, match="scored 2 of 6 archs"):
        rank_archs(space, score, truth, archs, {}, store=store, stop_after_s=1e-12)
    assert scored == []
    with path.open("a") as f:
        f.write('{"arch": "|nor_conv')  # killed while writing
    report = rank_archs(space, score, truth, archs, {}, store=ScoreStore(path, {"weights": "w1"}))
    assert scored == natives[2:]  # only the rest was scored
    assert report.scores == [10.0, 10.0, 51.0, 52.0, 53.0, 54.0] and report.seconds >= 1.0  # both slices' time
    assert len(ScoreStore(path, {"weights": "w1"})) == 6
    assert len(ScoreStore(path, {"weights": "w2"})) == 0  # other weights: nothing reused
    with pytest.raises(ValueError, match="needs a score store"):
        rank_archs(space, score, truth, archs, {}, stop_after_s=1.0)


def test_score_fingerprint_changes_with_the_weights_and_the_sample():
    import torch

    from nasframe.rank import score_fingerprint

    space = NB201Space()
    protocol = {"device": "cuda:0", "space": {}, "supernet_epochs": 2, "score": "s", "bn": "b", "evaluator": {}}
    state = {"model": {"a": torch.zeros(3), "n": torch.tensor(2)}}
    archs = sample_archs(space, 4, seed=0)
    base = score_fingerprint(protocol, state, space, archs)
    assert base == score_fingerprint({**protocol, "device": "cuda:1"}, state, space, archs)
    assert base != score_fingerprint(protocol, {"model": {"a": torch.ones(3), "n": torch.tensor(2)}}, space, archs)
    assert base != score_fingerprint(protocol, state, space, archs[::-1])
    assert base != score_fingerprint({**protocol, "device": "cpu"}, state, space, archs)


def test_table_benchmark_reads_any_table(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("index,arch,cifar10_test,cifar100_test\n0,A,90.5,70\n1,B,91,71.5\n")
    bench = NB201Benchmark(path=str(table))
    assert bench.metrics == ("cifar10_test", "cifar100_test") and len(bench) == 2
    assert bench.query("B") == {"cifar10_test": 91.0, "cifar100_test": 71.5, "index": 1.0}
    with pytest.raises(InvalidArchError, match="no entry for arch 'C'"):
        bench.query("C")
    with pytest.raises(ConfigError, match="no metric 'cifar10_valid'"):
        bench.check_metric("cifar10_valid")
    with pytest.raises(DataError, match="not found"):
        NB201Benchmark(path=str(tmp_path / "none.csv"))


@pytest.mark.skipif(not REAL_TABLE.is_file(), reason=f"NAS-Bench-201 table not found at {REAL_TABLE} (set NASFRAME_DATA)")
def test_real_table_covers_the_space_with_the_known_optimum():
    bench = NB201Benchmark()
    space = NB201Space()
    assert len(bench) == 15_625
    assert {space.format(a) for a in space.enumerate()} == set(bench.archs())
    best = max(bench.archs(), key=lambda n: bench.metric(n, "cifar10_test"))
    assert math.isclose(bench.metric(best, "cifar10_test"), 94.37, abs_tol=0.005)
    assert bench.query(best)["cifar100_test"] > 70


# -- the official API path, on a tiny benchmark in the nas-bench-201 package's own format -------------------
_SETS = {"cifar10-valid": ["x-valid", "ori-test"], "cifar10": ["ori-test"],
         "cifar100": ["x-valid", "x-test", "ori-test"], "ImageNet16-120": ["x-valid", "x-test", "ori-test"]}


def _trial(dataset: str, epochs: int, accuracy: float, index: int) -> dict:
    """One ResultsCount state dict: set ``s`` (the i-th eval set) scores accuracy + i at every epoch."""
    evals = {f"{name}@{e}": accuracy + i for i, name in enumerate(_SETS[dataset]) for e in range(epochs)}
    return {"name": dataset, "seed": 777, "epochs": epochs, "params": 0.5 + index, "flop": 20.0 + index,
            "latency": [0.004 * (index + 1)], "net_state_dict": None, "arch_config": None,
            "train_acc1es": dict.fromkeys(range(epochs), 99.0), "train_acc5es": None,
            "train_losses": dict.fromkeys(range(epochs), 0.1), "train_times": dict.fromkeys(range(epochs), 1.0),
            "eval_names": list(_SETS[dataset]), "eval_acc1es": evals, "eval_losses": dict.fromkeys(evals, 1.0),
            "eval_times": dict.fromkeys(evals, 1.0)}


def _arch_results(index: int, native: str, epochs: int, accuracy: float) -> dict:
    return {"arch_index": index, "arch_str": native, "clear_net_done": False,
            "dataset_seed": {d: [777] for d in _SETS},
            "all_results": {(d, 777): _trial(d, epochs, accuracy, index) for d in _SETS}}


def test_api_source_reads_the_official_format():
    nas_201_api = pytest.importorskip("nas_201_api")
    natives = [NB201Space().format(a) for a in sample_archs(NB201Space(), 3, seed=0)]
    tiny = {"meta_archs": natives, "evaluated_indexes": [0, 1, 2], "total_archs": 3,
            "arch2infos": {i: {"less": _arch_results(i, n, 12, 40.0 + i), "full": _arch_results(i, n, 200, 80.0 + i)}
                           for i, n in enumerate(natives)}}
    bench = NB201Benchmark(api=nas_201_api.NASBench201API(tiny, verbose=False))
    assert len(bench) == 3 and list(bench.archs()) == natives
    row = bench.query(natives[2])
    # 200-epoch ('full') results; cifar10 valid comes from the cifar10-valid protocol's x-valid set
    assert row["cifar10_valid"] == 82.0 and row["cifar10_test"] == 82.0
    assert row["cifar100_valid"] == 82.0 and row["cifar100_test"] == 83.0 and row["imagenet16_120_test"] == 83.0
    assert row["params_M"] == 2.5 and row["flops_M"] == 22.0 and row["latency_ms"] == pytest.approx(12.0)
    assert set(bench.metrics) >= {"cifar10_valid", "cifar10_test", "params_M"}
    with pytest.raises(InvalidArchError):
        bench.query("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
