"""The learned combination of proxies: features, and a fit that recovers a label a proxy carries."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from nasframe.evaluation.surrogate import ProxySurrogate, one_hot
from search_spaces.nb201 import NB201Space


def test_one_hot_marks_one_option_per_choice():
    space = NB201Space()
    arch = space.sample(np.random.default_rng(0))
    code = one_hot(space, arch)
    assert code.shape == (6 * 5,) and code.sum() == 6
    assert code[0 * 5 + space.choices[0].options.index(arch["edge_1_0"])] == 1


def test_features_are_ranks_among_the_reference_and_the_encoding():
    space = NB201Space()
    reference = [{"a": 10.0}, {"a": float("-inf")}, {"a": 1e30}, {"a": 10.0}]
    surrogate = ProxySurrogate(space, ["a"], reference, encode_arch=True)
    arch = space.sample(np.random.default_rng(0))
    features = surrogate.features([arch, arch], [{"a": 10.0}, {"a": 5.0}])
    assert features[:, 0].tolist() == pytest.approx([2.5 / 4, 1.5 / 4])  # tied average rank; between neighbours
    assert features.shape == (2, 1 + 30) and features[0, 1:].sum() == 6


@pytest.mark.parametrize("model", ["gbt", "ridge", "pairwise", "gbt+pairwise"])
def test_a_surrogate_learns_a_label_that_one_proxy_carries_and_ignores_noise(model):
    space, rng = NB201Space(), np.random.default_rng(0)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(300)))
    signal = rng.normal(size=len(archs))
    values = [{"signal": s ** 3, "noise": rng.normal()} for s in signal]  # monotone in the label, other scale
    labels = 90 + signal
    surrogate = ProxySurrogate(space, ["signal", "noise"], values, model=model, encode_arch=False, seed=0)
    surrogate.fit(archs[:100], values[:100], labels[:100])
    predicted = surrogate.predict(archs[100:], values[100:])
    assert stats.kendalltau(predicted, labels[100:]).statistic > 0.8


def test_the_learned_evaluator_draws_distinct_models_and_learns_their_labels():
    from nasframe.core.space import DataSpec
    from nasframe.evaluation.learned import LearnedConfig, LearnedEvaluator
    from nasframe.evaluation.zero_cost import ZeroCostConfig, ZeroCostEvaluator

    space = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)
    proxies = ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy=["params", "flops"]))
    label = lambda arch: 50 + space.count_params(arch) / 1000  # noqa: E731  an accuracy that #params carries
    learned = LearnedEvaluator(space, proxies, label, LearnedConfig(proxy=["params", "flops"], num_labelled=40,
                                                                    reference_archs=20, encode_arch=False))
    assert len(set(learned.labelled)) == 40 and all(space.canonical(a) == a for a in learned.labelled)
    rng = np.random.default_rng(1)
    others = [a for a in (space.sample(rng) for _ in range(60)) if space.canonical(a) not in set(learned.labelled)]
    predicted = [learned(a) for a in others]
    assert stats.kendalltau(predicted, [label(a) for a in others]).statistic > 0.7


def _cell(native: str):
    return NB201Space().parse(native)


def test_cell_features_of_hand_checked_cells():
    from search_spaces.nb201 import CELL_FEATURES, cell_features

    empty = cell_features(_cell("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    assert list(empty) == list(CELL_FEATURES) and all(v == 0 for v in empty.values())  # no path to the output
    largest = cell_features(_cell("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                                  "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"))
    degrees = {f"{where}_{op}": 0 for where in ("from_input", "into_output")
               for op in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")}
    assert largest == {"skip_connect": 0, "nor_conv_1x1": 0, "nor_conv_3x3": 6, "avg_pool_3x3": 0, "connected": 1,
                       "parametric_path": 1, "max_convs": 3, "min_convs": 1, "paths": 4, "conv_free_paths": 0,
                       "depth": 3, "width": 3, **degrees, "from_input_nor_conv_3x3": 3, "into_output_nor_conv_3x3": 3}
    # node 1 has no input: its convs are dead; the one path is the skip 0 -> 3 (a shortcut, no parametric path)
    dead = cell_features(_cell("|none~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"))
    assert dead == {"skip_connect": 1, "nor_conv_1x1": 0, "nor_conv_3x3": 0, "avg_pool_3x3": 0, "connected": 1,
                    "parametric_path": 0, "max_convs": 0, "min_convs": 0, "paths": 1, "conv_free_paths": 1,
                    "depth": 1, "width": 1, **degrees, "from_input_skip_connect": 1, "into_output_skip_connect": 1}
    # a conv chain 0 -> 1 -> 2 -> 3 beside a pooling shortcut 0 -> 3
    chain = cell_features(_cell("|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"))
    assert (chain["max_convs"], chain["min_convs"], chain["paths"], chain["conv_free_paths"], chain["depth"],
            chain["width"], chain["avg_pool_3x3"]) == (3, 0, 2, 1, 3, 2, 1)
    # both paths leave the input (1x1 conv, pool) and enter the output (3x3 conv, pool)
    assert {k: v for k, v in chain.items() if k.startswith(("from_", "into_")) and v} == {
        "from_input_nor_conv_1x1": 1, "from_input_avg_pool_3x3": 1, "into_output_nor_conv_3x3": 1,
        "into_output_avg_pool_3x3": 1}


def test_cell_features_ignore_edges_off_every_path_and_stay_within_their_scale():
    from search_spaces.nb201 import CELL_FEATURES, cell_features, cell_paths

    space, rng, checked = NB201Space(), np.random.default_rng(0), 0
    for arch in (space.sample(rng) for _ in range(300)):
        features = cell_features(arch)
        assert all(0 <= features[name] <= top for name, top in CELL_FEATURES.items())
        on_path = {name for path in cell_paths(arch) for name in path}
        for name in (n for n in arch if n not in on_path and arch[n] != "none"):  # another op on a dead edge
            other = "avg_pool_3x3" if arch[name] != "avg_pool_3x3" else "nor_conv_3x3"
            assert cell_features(space.validate({**arch, name: other})) == features
            checked += 1
    assert checked > 50


def test_cell_features_need_an_edge_cell():
    from search_spaces.nb201 import cell_features

    with pytest.raises(ValueError):
        cell_features({"depth": "3"})


def test_features_with_cell_features_are_ranks_then_scaled_cell_features_then_the_encoding():
    from search_spaces.nb201 import CELL_FEATURES

    space = NB201Space()
    surrogate = ProxySurrogate(space, ["a"], [{"a": 1.0}, {"a": 2.0}], encode_arch=True, cell_features=True)
    largest = _cell("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    features = surrogate.features([largest], [{"a": 2.0}])[0]
    assert features.shape == (1 + len(CELL_FEATURES) + 30,)
    cell = dict(zip(CELL_FEATURES, features[1:1 + len(CELL_FEATURES)]))
    assert cell["nor_conv_3x3"] == 1 and cell["max_convs"] == 1 and cell["min_convs"] == pytest.approx(1 / 3)
    assert features[1 + len(CELL_FEATURES):].sum() == 6


@pytest.mark.parametrize("model", ["pairwise", "gbt+pairwise"])
def test_pairwise_models_learn_a_label_that_one_proxy_carries(model):
    space, rng = NB201Space(), np.random.default_rng(0)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(300)))
    signal = rng.normal(size=len(archs))
    values = [{"signal": s ** 3, "noise": rng.normal()} for s in signal]
    labels = 90 + signal
    surrogate = ProxySurrogate(space, ["signal", "noise"], values, model=model, encode_arch=True, seed=0,
                               cell_features=True)
    surrogate.fit(archs[:100], values[:100], labels[:100])
    predicted = surrogate.predict(archs[100:], values[100:])
    assert predicted.shape == (len(archs) - 100,)
    assert stats.kendalltau(predicted, labels[100:]).statistic > 0.8
    if model == "gbt+pairwise":  # the pairwise member sees the ranks and the cell features, not the encoding
        assert [member[1] for member in surrogate.models] == [slice(0, 2 + 20 + 30), slice(0, 2 + 20)]
    # an arch's score does not depend on the archs scored with it (the learned evaluator scores one at a time)
    alone = [surrogate.predict([a], [v])[0] for a, v in zip(archs[100:110], values[100:110])]
    assert np.allclose(alone, predicted[:10])


def test_the_learned_evaluators_proxies_take_the_zero_cost_settings_and_their_own_seed():
    from nasframe.evaluation.learned import LearnedConfig

    plain = LearnedConfig(seed=3).proxy_config()
    assert plain.seed == 3 and plain.batch_size is None and plain.per_proxy == {}  # follows the draw's seed
    tuned = LearnedConfig(proxy=["synflow", "jacov"], seed=3, proxy_seed=0, batch_size=16, cache_file="c.jsonl",
                          per_proxy={"synflow": {"bn": "calibrated"}}).proxy_config()
    assert (tuned.seed, tuned.batch_size, tuned.cache_file) == (0, 16, "c.jsonl")
    assert tuned.proxy == ["synflow", "jacov"] and tuned.per_proxy == {"synflow": {"bn": "calibrated"}}


def test_trees_plus_pairwise_without_proxies_or_cells_is_the_trees_alone():
    from nasframe.core.registry import SPACES
    from nasframe.core.space import DataSpec

    space = SPACES.build({"name": "gnn_bench"}, "space", data=DataSpec())  # no edge_<to>_<from>: no cell features
    archs = [space.sample(np.random.default_rng(s)) for s in range(12)]
    labels = [float(a["op_1"] == "gcn") + 0.5 * float(a["link"] == "0123") + 0.01 * i for i, a in enumerate(archs)]
    none = [{}] * len(archs)
    both = ProxySurrogate(space, [], none, "gbt+pairwise", True, seed=0)
    both.fit(archs, none, labels)
    trees = ProxySurrogate(space, [], none, "gbt", True, seed=0)
    trees.fit(archs, none, labels)
    assert np.allclose(both.predict(archs, none), trees.predict(archs, none))


def test_a_space_with_its_own_structure_features_gets_them_as_cell_features():
    from nasframe.core.space import DataSpec
    from nasframe.evaluation.surrogate import has_structure
    from search_spaces.gnn_bench import GNNBenchSpace

    space = GNNBenchSpace(DataSpec(8, (1, 1), 3), hidden=8)
    assert has_structure(space) and has_structure(NB201Space())
    archs = [space.sample(np.random.default_rng(seed)) for seed in range(3)]
    surrogate = ProxySurrogate(space, ["a"], [{"a": 1.0}, {"a": 2.0}], encode_arch=True, cell_features=True)
    features = surrogate.features(archs, [{"a": 1.0}] * 3)
    scales = space.structure_feature_scales
    width = sum(len(c) for c in space.choices)
    assert features.shape == (3, 1 + len(scales) + width)
    expected = [[value / scales[name] for name, value in space.structure_features(a).items()] for a in archs]
    assert np.allclose(features[:, 1:1 + len(scales)], expected)


def test_cell_features_are_refused_for_a_space_without_them():
    from nasframe.core.space import DataSpec
    from nasframe.evaluation.surrogate import has_structure
    from search_spaces.mobilenet import MobileNetSpace

    space = MobileNetSpace(DataSpec(3, (32, 32), 10))
    assert not has_structure(space)
    with pytest.raises(ValueError, match="no cell-structure features"):
        ProxySurrogate(space, ["a"], [{"a": 1.0}], cell_features=True)


def test_the_pairwise_model_fits_on_at_most_max_pairs_pairs_drawn_by_its_seed(monkeypatch):
    from sklearn.linear_model import LogisticRegression

    from nasframe.evaluation.surrogate import _PairwiseLinear

    seen = []
    fit = LogisticRegression.fit
    monkeypatch.setattr(LogisticRegression, "fit", lambda self, x, y: seen.append(x.copy()) or fit(self, x, y))
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(60, 3)), rng.normal(size=60)
    weights = []
    for seed in (0, 0, 1):
        model = _PairwiseLinear(max_pairs=500, seed=seed)
        model.fit(features, labels)
        weights.append(model.weights)
    assert [len(x) for x in seen] == [1000, 1000, 1000]  # both orders of the 500 pairs drawn of 1,770
    assert np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[0], seen[2])
    assert np.corrcoef(weights[0], weights[2])[0, 1] > 0.9  # a sample of the pairs fits the same direction
    _PairwiseLinear(max_pairs=10_000).fit(features, labels)
    assert len(seen[-1]) == 2 * 60 * 59 // 2  # under the cap: every pair
