"""The training-free evaluator: paper settings applied, isomorphic cells scored once, rank combination, the
cache file, the trivial baselines (#params, FLOPs, random ranking) and the CLI (rank without a run, search
without training, both beside their baselines)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nasframe.core.space import DataSpec
from nasframe.data.base import TensorSplit
from nasframe.errors import ConfigError, NasframeError
from nasframe.evaluation.ranking import random_ranking_expectation
from nasframe.evaluation.zero_cost import ZeroCostConfig, ZeroCostEvaluator
from nasframe.evaluation.zero_cost.base import ProxySettings
from nasframe.evaluation.zero_cost.combine import RankCombination, combine_population
from nasframe.evaluation.zero_cost.flops import count_macs
from nasframe.evaluation.zero_cost.prepare import initialise, make_batch, set_batchnorm_mode
from search_spaces.nb201 import NB201Space

LARGEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def tiny_evaluator(proxy, **settings) -> ZeroCostEvaluator:
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)
    generator = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.randn(80, 3, 8, 8, generator=generator), torch.randint(0, 10, (80,), generator=generator))
    return ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy=proxy, **settings), train=train)


def test_params_and_flops_of_the_largest_nb201_cell_match_the_benchmark():
    """NAS-Bench-201's API gives the all-3x3 cell (C=16, N=5, CIFAR-10) 1.531546 M parameters and 220.11 M FLOPs
    (multiply-accumulates): the structural proxies count the same."""
    space = NB201Space(DataSpec(3, (32, 32), 10), channels=16, cells_per_stage=5)
    evaluator = ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy=["params", "flops"]))
    values = evaluator.component_values(space.parse(LARGEST))
    assert values["params"] == 1_531_546
    assert values["flops"] / 1e6 == pytest.approx(220.11, abs=0.01)


def test_flops_are_multiply_accumulates_of_convolutions_and_linear_layers():
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    assert count_macs(net, torch.zeros(1, 2, 4, 4)) == 3 * 2 * 9 * 16 + 48 * 5


def test_rank_combination_is_azs_sum_of_log_ranks():
    """AZ-NAS: score = sum over proxies of log(rank / m), ties sharing their average rank."""
    population = [{"a": 1.0, "b": 30.0}, {"a": 2.0, "b": 10.0}, {"a": 2.0, "b": 20.0}, {"a": 4.0, "b": 40.0}]
    ranks_a, ranks_b = [1, 2.5, 2.5, 4], [3, 1, 2, 4]
    expected = [math.log(ra / 4) + math.log(rb / 4) for ra, rb in zip(ranks_a, ranks_b)]
    assert combine_population(population, ["a", "b"]) == pytest.approx(expected)
    outside = RankCombination(population, ["a", "b"])
    assert outside.rank("a", 3.0) == pytest.approx(3.5 / 4)  # half a rank between its neighbours
    assert outside.rank("a", 100.0) == pytest.approx(4.5 / 4) and outside.rank("a", -1.0) == pytest.approx(0.5 / 4)


def test_bn_modes_and_initialisation():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    batch = torch.randn(16, 3, 6, 6) * 3 + 1
    set_batchnorm_mode(net, "calibrated", batch)
    with torch.no_grad():
        features = net[0](batch)
    assert not net.training
    assert torch.allclose(net[1].running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    set_batchnorm_mode(net, "eval", None)
    assert torch.all(net[1].running_mean == 0) and torch.all(net[1].running_var == 1)
    set_batchnorm_mode(net, "train", None)
    net(batch)
    assert net.training and net[1].running_mean is None  # batch statistics, nothing kept
    wide = nn.Linear(400, 300)
    torch.manual_seed(0)
    initialise(wide, "kaiming_fan_in")
    assert wide.weight.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.02) and torch.all(wide.bias == 0)


def test_batches_are_seeded_draws_without_replacement():
    train = TensorSplit(torch.arange(100.0).view(100, 1, 1, 1), torch.arange(100) % 10)
    settings = ProxySettings(batch_size=30, batches=2)
    first = make_batch(settings, train, None, 10, (1, 1, 1), seed=3, device=torch.device("cpu"))
    again = make_batch(settings, train, None, 10, (1, 1, 1), seed=3, device=torch.device("cpu"))
    drawn = torch.cat([x.flatten() for x in first.inputs])
    assert len(set(drawn.tolist())) == 60 and torch.equal(drawn, torch.cat([x.flatten() for x in again.inputs]))
    noise = make_batch(ProxySettings(input="noise", batch_size=8), None, None, 10, (3, 4, 4), 0, torch.device("cpu"))
    assert noise.inputs[0].shape == (8, 3, 4, 4) and noise.labels[0].max() < 10


def test_isomorphic_cells_are_scored_once_and_the_cache_file_resumes(tmp_path):
    cache = tmp_path / "values.jsonl"
    evaluator = tiny_evaluator("params", cache_file=str(cache))
    space = evaluator.space
    # node 1 unused (its only consumer edges are none): these two cells are one network
    a = space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|")
    b = space.parse("|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|")
    assert space.canonical(a) == space.canonical(b)
    assert evaluator(a) == evaluator(b) and len(evaluator.values) == 1
    assert len(cache.read_text().splitlines()) == 1
    again = tiny_evaluator("params", cache_file=str(cache))
    assert again.space.canonical(a) in again.values  # read back, not computed
    other = tiny_evaluator("flops", cache_file=str(cache))
    assert not other.values  # another proxy's fingerprint: nothing reused
    # the time spent on archs counts each class once, read-back classes at the seconds measured when computed
    c = space.parse(LARGEST)
    evaluator(c)
    assert evaluator.seconds_for([a, b, c]) == evaluator.seconds[space.canonical(a)] + evaluator.seconds[space.canonical(c)] > 0
    assert again.seconds_for([b]) == evaluator.seconds[space.canonical(a)]
    assert again.seconds_for([c]) == 0.0  # not computed by that evaluator


def test_an_unknown_proxy_or_setting_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown proxy 'synflw'"):
        tiny_evaluator("synflw")
    with pytest.raises(ConfigError, match="evaluator.bn"):
        tiny_evaluator("grad_norm", bn="frozen")


def test_per_proxy_settings_apply_to_their_proxy_only_and_change_its_value():
    evaluator = tiny_evaluator(["synflow", "jacov"], batch_size=8, per_proxy={"synflow": {"bn": "calibrated",
                                                                                           "input": "real"}})
    synflow, jacov = evaluator.settings["synflow"], evaluator.settings["jacov"]
    assert (synflow.bn, synflow.input, synflow.batch_size) == ("calibrated", "real", 8)  # global, then its own
    assert (jacov.bn, jacov.input, jacov.batch_size) == ("train", "real", 8)  # the paper's, the global batch size
    arch = evaluator.space.parse(LARGEST)
    plain = tiny_evaluator("synflow", batch_size=8)
    calibrated = tiny_evaluator("synflow", batch_size=8, bn="calibrated", input="real")
    value = evaluator.component_values(arch)["synflow"]
    assert value == calibrated.component_values(arch)["synflow"] != plain.component_values(arch)["synflow"]
    assert evaluator.describe() != tiny_evaluator(["synflow", "jacov"], batch_size=8).describe()  # cache fingerprint


def test_per_proxy_errors_name_the_proxy_and_the_setting():
    with pytest.raises(ConfigError, match="per_proxy.naswot: not a proxy of this evaluator; it runs synflow"):
        tiny_evaluator("synflow", per_proxy={"naswot": {"bn": "eval"}})
    with pytest.raises(ConfigError, match="per_proxy.synflow.momentum: unknown setting; valid: init, bn"):
        tiny_evaluator("synflow", per_proxy={"synflow": {"momentum": 0.1}})
    with pytest.raises(ConfigError, match="per_proxy.params: params reads no data and no weights"):
        tiny_evaluator(["params", "synflow"], per_proxy={"params": {"bn": "eval"}})



def test_errors_name_the_config_key_the_settings_sit_under():
    """A selector's proxies are its own settings: errors name them there, not under ``evaluator``."""
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)

    def build(config, key):
        return ZeroCostEvaluator(space, space.build_subnet, config, config_key=key)

    with pytest.raises(ConfigError, match=r"^selectors\.guided\.proxy: unknown proxy 'synflw'"):
        build(ZeroCostConfig(proxy=["synflw"]), "selectors.guided")
    with pytest.raises(ConfigError, match=r"^selector\.per_proxy\.synflow\.momentum: unknown setting"):
        build(ZeroCostConfig(proxy="synflow", per_proxy={"synflow": {"momentum": 0.1}}), "selector")
    with pytest.raises(ConfigError, match=r"^selector\.per_proxy\.jacov\.bn: 'off' is not one of"):
        build(ZeroCostConfig(proxy="jacov", per_proxy={"jacov": {"bn": "off"}}), "selector")
    with pytest.raises(ConfigError, match=r"^selector\.input=real needs training data"):
        build(ZeroCostConfig(proxy="jacov", input="real"), "selector").component_values(space.parse(LARGEST))
    with pytest.raises(ConfigError, match=r"^evaluator\.proxy: name one proxy"):  # the default key
        ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy=[]))
    with pytest.raises(ConfigError, match="evaluator.per_proxy.synflow.bn: 'frozen' is not one of"):
        tiny_evaluator("synflow", per_proxy={"synflow": {"bn": "frozen"}})


def test_values_recorded_from_elsewhere_are_kept_and_cached(tmp_path):
    cache = tmp_path / "values.jsonl"
    worker, keeper = tiny_evaluator("params"), tiny_evaluator("params", cache_file=str(cache))
    arch = worker.space.parse(LARGEST)
    keeper.record(arch, worker.component_values(arch), 0.5)
    assert keeper.component_values(arch) == worker.component_values(arch) and keeper.seconds[keeper.key(arch)] == 0.5
    assert tiny_evaluator("params", cache_file=str(cache)).values == keeper.values  # read back from the file
    with pytest.raises(NasframeError, match="record: no value for component params"):
        keeper.record(arch, {"flops": 1.0}, 0.1)


def test_a_combined_score_ranks_among_the_reference_sample():
    evaluator = tiny_evaluator(["params", "flops"], reference_archs=12)
    space = evaluator.space
    largest, smallest = space.parse(LARGEST), space.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert evaluator.combined and evaluator(largest) > evaluator(smallest)
    assert len(evaluator.combination.sorted["params"]) == 12


def test_random_ranking_expectation_matches_simulation():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=200)
    expected = random_ranking_expectation(truth)
    from nasframe.evaluation.ranking import ranking_metrics

    draws = [ranking_metrics(rng.normal(size=200), truth) for _ in range(300)]
    for key in ("kendall_tau", "spearman", "precision_at_top_10pct", "true_accuracy_of_best_scored"):
        tolerance = 0.2 if key == "true_accuracy_of_best_scored" else 0.03  # truth has std 1, the rest are in [-1, 1]
        assert np.mean([d[key] for d in draws]) == pytest.approx(expected[key], abs=tolerance), key


def test_the_hybrid_score_is_the_log_rank_sum_of_supernet_accuracy_and_proxies(digits, tiny_space):
    from nasframe.evaluation.hybrid import HybridConfig, HybridEvaluator

    torch.manual_seed(0)
    supernet = tiny_space.build_supernet()
    proxies = ZeroCostEvaluator(tiny_space, tiny_space.build_subnet, ZeroCostConfig(proxy="params"))
    config = HybridConfig(proxy="params", bn_recalibration_batches=1, bn_batch_size=32, batch_size=128)
    hybrid = HybridEvaluator(supernet, digits.valid, digits.train, config, prepare=digits.prepare, space=tiny_space,
                             proxies=proxies)
    rng = np.random.default_rng(0)
    archs = list(dict.fromkeys(tiny_space.sample(rng) for _ in range(6)))
    hybrid.set_reference(archs)
    values = [hybrid.component_values(a) for a in archs]
    from scipy.stats import rankdata

    m = len(archs)
    by_hand = sum(np.log(rankdata([v[c] for v in values]) / m) for c in ("supernet", "params"))
    assert [hybrid(a) for a in archs] == pytest.approx(by_hand.tolist())
    arch = archs[0]
    assert values[0]["supernet"] == hybrid.accuracy_of(arch) and 0 <= values[0]["supernet"] <= 100


def test_a_gzipped_cache_file_is_read_and_never_written(tmp_path, tiny_space):
    import gzip

    plain = tmp_path / "values.jsonl"
    first = ZeroCostEvaluator(tiny_space, tiny_space.build_subnet,
                              ZeroCostConfig(proxy=["params"], cache_file=str(plain)))
    archs = [tiny_space.sample(np.random.default_rng(s)) for s in range(3)]
    values = [first.component_values(a) for a in archs[:2]]
    snapshot = tmp_path / "values.jsonl.gz"
    snapshot.write_bytes(gzip.compress(plain.read_bytes()))
    again = ZeroCostEvaluator(tiny_space, tiny_space.build_subnet, ZeroCostConfig(proxy=["params"],
                                                                                 cache_file=str(snapshot)))
    assert len(again.values) == len({tiny_space.canonical(a) for a in archs[:2]})  # read from the snapshot
    assert [again.component_values(a) for a in archs[:2]] == values
    before = snapshot.read_bytes()
    again.component_values(archs[2])  # computed, kept in memory only
    assert snapshot.read_bytes() == before
