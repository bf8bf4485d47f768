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


@pytest.mark.parametrize("model", ["gbt", "ridge"])
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
