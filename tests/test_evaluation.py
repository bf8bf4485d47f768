"""BN recalibration and the supernet evaluator."""

from __future__ import annotations

import torch
from torch import nn

from nasframe.evaluation import EvaluatorConfig, SupernetEvaluator, accuracy, recalibrate_batchnorm
from nasframe.export import extract


def test_recalibration_computes_the_exact_batch_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.Dropout(0.5))
    model.train()
    for _ in range(5):
        model(torch.randn(8, 2, 4, 4) * 3 + 1)  # pollute the running statistics
    batches = [torch.randn(16, 2, 4, 4) for _ in range(3)]
    assert recalibrate_batchnorm(model, batches) == 3
    assert not model.training and model[1].momentum == 0.1
    with torch.no_grad():
        feats = [model[0](b) for b in batches]
    mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in feats]).mean(0)
    assert torch.allclose(model[1].running_mean, mean, atol=1e-6)
    assert torch.allclose(model[1].running_var, var, atol=1e-5)


def test_evaluator_matches_recalibrated_standalone_subnet_and_caches(tiny_space, digits, rng):
    torch.manual_seed(0)
    supernet = tiny_space.build_supernet()
    evaluator = SupernetEvaluator(supernet, digits.valid, digits.train, EvaluatorConfig(bn_recalibration_batches=2, bn_batch_size=64))
    arch = tiny_space.sample(rng)
    score = evaluator(arch)
    subnet = extract(tiny_space, supernet, arch)
    recalibrate_batchnorm(subnet, evaluator.bn_batches)
    assert accuracy(subnet, digits.valid) == score

    calls = []
    original = evaluator.prepare
    evaluator.prepare = lambda a: (calls.append(a), original(a))
    assert evaluator(arch) == score and calls == []  # cached
    other = tiny_space.sample(rng)
    evaluator(other)
    assert calls == [other]


def test_recalibration_images_are_the_same_for_every_arch(tiny_space, digits):
    supernet = tiny_space.build_supernet()
    a = SupernetEvaluator(supernet, digits.valid, digits.train, EvaluatorConfig(bn_seed=1))
    b = SupernetEvaluator(supernet, digits.valid, digits.train, EvaluatorConfig(bn_seed=1))
    assert all(torch.equal(x, y) for x, y in zip(a.bn_batches, b.bn_batches))
    assert len(a.bn_batches) == 2 and a.bn_batches[0].shape[0] == 128
