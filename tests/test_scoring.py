"""The fast scoring pass: BN folded into the convolutions equals the unfolded path; bf16 ranks like fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau
from torch import nn

from nasframe.data.base import TensorSplit
from nasframe.errors import ConfigError
from nasframe.evaluation import EvaluatorConfig, SupernetEvaluator
from nasframe.evaluation.scoring import fold_batchnorm
from nasframe.export import extract
from test_trainer import make_trainer


@pytest.fixture(scope="module")
def trained(digits_module):
    """A small NB201 supernet trained for 2 epochs on digits, and the space."""
    from search_spaces.nb201 import NB201Space

    space = NB201Space(digits_module.spec, channels=8, cells_per_stage=1)
    trainer = make_trainer(space, digits_module, epochs=2)
    trainer.fit()
    return space, trainer.supernet


@pytest.fixture(scope="module")
def digits_module():
    from nasframe.data.digits import Digits

    return Digits().load()


def test_folded_path_equals_the_unfolded_path(trained, digits_module):
    space, supernet = trained
    evaluator = SupernetEvaluator(supernet, digits_module.valid, digits_module.train, space=space)
    rng = np.random.default_rng(0)
    x = evaluator.held_out.x[:64]
    for _ in range(5):
        arch = space.sample(rng)
        evaluator.prepare(arch)  # BN recalibrated for the arch
        plain = extract(space, supernet, arch).eval()
        folded = extract(space, supernet, arch).eval()
        count = fold_batchnorm(folded)
        assert count > 0
        with torch.no_grad():
            torch.testing.assert_close(folded(x), plain(x), atol=1e-4, rtol=1e-4)


def test_fold_batchnorm_replaces_conv_bn_pairs_only():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model[1].weight.uniform_(0.5, 1.5)
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
        assert fold_batchnorm(model) == 1
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
    assert isinstance(model[1], nn.Identity) and isinstance(model[3], nn.BatchNorm2d)  # BN after ReLU stays
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(model.train())


def test_fast_fp32_scores_equal_the_supernet_scores(trained, digits_module):
    space, supernet = trained
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(6)]
    exact = SupernetEvaluator(supernet, digits_module.valid, digits_module.train)
    fast = SupernetEvaluator(supernet, digits_module.valid, digits_module.train,
                             EvaluatorConfig(fold_bn=True, channels_last=True), space=space)
    assert [fast(a) for a in archs] == pytest.approx([exact(a) for a in archs], abs=100 / len(digits_module.valid))


def test_bf16_folded_scoring_ranks_archs_like_fp32(trained, digits_module):
    space, supernet = trained
    rng = np.random.default_rng(2)
    archs = list({space.sample(rng) for _ in range(40)})
    # scored on valid + test (719 images): with one split's 359, a single image moves a score by 0.28 points,
    # and near-ties between archs flip on that alone
    scored = TensorSplit(torch.cat([digits_module.valid.x, digits_module.test.x]),
                         torch.cat([digits_module.valid.y, digits_module.test.y]))
    exact = SupernetEvaluator(supernet, scored, digits_module.train)
    bf16 = SupernetEvaluator(supernet, scored, digits_module.train,
                             EvaluatorConfig(fold_bn=True, precision="bf16"), space=space)
    fp32_scores, bf16_scores = [exact(a) for a in archs], [bf16(a) for a in archs]
    assert np.std(fp32_scores) > 2.0  # the archs differ: the ranking is not a tie
    assert kendalltau(fp32_scores, bf16_scores).statistic >= 0.99


def test_fast_scoring_settings_are_checked(trained, digits_module):
    space, supernet = trained
    with pytest.raises(ConfigError, match="evaluator.precision"):
        EvaluatorConfig(precision="fp16").check()
    with pytest.raises(ConfigError, match="pass the space"):
        SupernetEvaluator(supernet, digits_module.valid, digits_module.train, EvaluatorConfig(fold_bn=True))
