"""The learned combination of proxies: features, and a fit that recovers a label a proxy carries."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from nasframe.evaluation.surrogate import ProxySurrogate, one_hot, rank_features
from search_spaces.nb201 import NB201Space


def test_one_hot_marks_one_option_per_choice():
    space = NB201Space()
    arch = space.sample(np.random.default_rng(0))
    code = one_hot(space, arch)
    assert code.shape == (6 * 5,) and code.sum() == 6
    assert code[0 * 5 + space.choices[0].options.index(arch["edge_1_0"])] == 1


def test_rank_features_are_ranks_in_the_unit_interval_with_nan_last():
    values = [{"a": 10.0}, {"a": float("nan")}, {"a": 1e30}, {"a": 10.0}]
    assert rank_features(values, ["a"])[:, 0].tolist() == pytest.approx([0.5, 0.0, 1.0, 0.5])


@pytest.mark.parametrize("model", ["gbt", "ridge"])
def test_a_surrogate_learns_a_label_that_one_proxy_carries_and_ignores_noise(model):
    space, rng = NB201Space(), np.random.default_rng(0)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(300)))
    signal = rng.normal(size=len(archs))
    values = [{"signal": s ** 3, "noise": rng.normal()} for s in signal]  # monotone in the label, other scale
    labels = 90 + signal
    surrogate = ProxySurrogate(space, ["signal", "noise"], model=model, encode_arch=False, seed=0)
    predicted = surrogate.fit_predict(archs[:100], values[:100], labels[:100], archs[100:], values[100:])
    assert stats.kendalltau(predicted, labels[100:]).statistic > 0.8
