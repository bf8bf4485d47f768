"""PA&DA: path and data probabilities against hand-computed norms, sampling frequencies, exact resume."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from nasframe.core.arch import Arch
from nasframe.data.base import InMemoryLoader
from nasframe.errors import ConfigError
from nasframe.sampling.pada import PADAData, PADASampler
from nasframe.training import SupernetTrainer, TrainerConfig
from nasframe.sampling.pada import logit_gradient_norms
from search_spaces.nb201 import NB201Space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def arch_with(space, op):
    return Arch({c.name: op for c in space.choices})


def norms(space, value, only=None):
    return {c.name: (None if value is None or (only and c.name not in only) else torch.tensor(value)) for c in space.choices}


def test_path_probabilities_match_hand_computed_norms():
    space = NB201Space()
    sampler = PADASampler(space, seed=0)
    # edge_1_0: conv3x3 seen twice (norms 2 and 4, mean 3), conv1x1 once (norm 1); parameter-free ops: no norm
    sampler.record(arch_with(space, "nor_conv_3x3"), norms(space, 2.0))
    sampler.record(arch_with(space, "nor_conv_3x3"), norms(space, 4.0, only={"edge_1_0"}))
    sampler.record(arch_with(space, "nor_conv_1x1"), norms(space, 1.0))
    sampler.record(arch_with(space, "skip_connect"), norms(space, None))
    sampler.end_epoch(epoch=3, epochs=4)  # tau = 3/4
    tau = 0.75
    # edge_1_0: importance (0, 0, 1, 3, 0) / 4
    expected = tau * np.array([0, 0, 1, 3, 0]) / 4 + (1 - tau) / 5
    assert sampler.prob["edge_1_0"] == pytest.approx(expected)
    # other edges: conv3x3 mean 2 (only the first step recorded them), conv1x1 1 -> (0, 0, 1, 2, 0) / 3
    assert sampler.prob["edge_2_1"] == pytest.approx(tau * np.array([0, 0, 1, 2, 0]) / 3 + (1 - tau) / 5)
    assert all(p.sum() == pytest.approx(1) for p in sampler.prob.values())


def test_first_epoch_is_uniform_and_parameter_free_options_keep_only_the_uniform_share():
    space = NB201Space()
    sampler = PADASampler(space, seed=0)
    assert all(p == pytest.approx(0.2) for p in sampler.prob["edge_3_2"])
    sampler.record(arch_with(space, "nor_conv_3x3"), norms(space, 5.0))
    sampler.end_epoch(epoch=0, epochs=10)  # tau = 0: still uniform after the first epoch
    assert sampler.prob["edge_3_2"] == pytest.approx([0.2] * 5)
    sampler.record(arch_with(space, "nor_conv_3x3"), norms(space, 5.0))
    sampler.end_epoch(epoch=5, epochs=10)  # tau = 0.5
    assert sampler.prob["edge_3_2"] == pytest.approx([0.1, 0.1, 0.1, 0.6, 0.1])


def test_shared_distribution_pools_all_choices():
    space = NB201Space()
    sampler = PADASampler(space, seed=0, share_across_choices=True)
    sampler.record(arch_with(space, "nor_conv_3x3").replace(edge_1_0="nor_conv_1x1"),
                   {**norms(space, 3.0), "edge_1_0": torch.tensor(6.0)})
    sampler.end_epoch(epoch=2, epochs=2)  # tau = 1: pure importance
    assert sampler.prob["edge_1_0"] == pytest.approx([0, 0, 6 / 9, 3 / 9, 0])
    assert all(np.array_equal(p, sampler.prob["edge_1_0"]) for p in sampler.prob.values())


def test_sampled_paths_follow_the_probabilities():
    space = NB201Space()
    sampler = PADASampler(space, seed=1)
    sampler.prob["edge_2_0"] = np.array([0.05, 0.05, 0.1, 0.7, 0.1])
    n = 20_000
    counts = Counter(sampler.sample()["edge_2_0"] for _ in range(n))
    for option, p in zip(OPS, sampler.prob["edge_2_0"]):
        assert abs(counts[option] / n - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_data_probabilities_and_visit_frequencies():
    data = PADAData(num_examples=4, tau_max=1.0)
    g = torch.Generator().manual_seed(0)
    assert sorted(data.order(4, g).tolist()) == [0, 1, 2, 3]  # first epoch: every example once
    data.observe(torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0, 3.0]))
    data.observe(torch.tensor([2]), torch.tensor([5.0]))  # example 2: mean of 3 and 5 = 4
    data.end_epoch(epoch=1, epochs=2)  # tau = 1/2; example 3 unseen -> importance 0
    expected = 0.5 * torch.tensor([1, 2, 4, 0]) / 7 + 0.5 / 4
    assert torch.allclose(data.prob, expected)
    draws = torch.cat([data.order(4, g) for _ in range(20_000)])
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    assert torch.allclose(freq, expected, atol=5 * (0.25 / len(draws)) ** 0.5)


def test_logit_gradient_norm_is_the_per_example_loss_gradient():
    logits = torch.randn(6, 10, requires_grad=True)
    targets = torch.randint(0, 10, (6,))
    torch.nn.functional.cross_entropy(logits, targets, reduction="sum").backward()
    assert torch.allclose(logit_gradient_norms(logits.detach(), targets), logits.grad.norm(dim=1), atol=1e-6)


def test_path_grad_norms_are_the_active_ops_gradient_norms():
    space = NB201Space(channels=4, cells_per_stage=2)
    supernet = space.build_supernet()
    arch = arch_with(space, "nor_conv_3x3").replace(edge_1_0="skip_connect")
    supernet.set_arch(arch)
    supernet(torch.randn(2, 3, 8, 8)).sum().backward()
    result = supernet.path_grad_norms()
    assert result["edge_1_0"] is None
    per_cell = []
    for module in supernet.modules():
        if getattr(module, "choice_name", None) == "edge_2_1":
            grads = torch.cat([p.grad.flatten() for p in module.candidates["nor_conv_3x3"].parameters()])
            per_cell.append(grads.norm())
    assert len(per_cell) == 6 and torch.allclose(result["edge_2_1"], torch.stack(per_cell).mean())


def make_pada_trainer(space, digits, run_dir=None, epochs=4, seed=0):
    torch.manual_seed(seed)
    sampler = PADASampler(space, seed=seed)
    loader = InMemoryLoader(digits.train, 128, seed=seed, data_order=sampler.data_order(len(digits.train)))
    config = TrainerConfig(epochs=epochs, batch_size=128, lr=0.05, progress=False)
    return SupernetTrainer(space.build_supernet(), sampler, loader, config, run_dir=run_dir,
                           space_description=space.describe())


def test_pada_training_resumes_exactly(tiny_space, digits, tmp_path):
    straight = make_pada_trainer(tiny_space, digits)
    straight.fit()
    assert straight.loader.data_order.prob is not None
    assert not np.allclose(straight.sampler.prob["edge_1_0"], 0.2)  # the distribution moved off uniform
    first = make_pada_trainer(tiny_space, digits, run_dir=tmp_path)
    first.fit(until_epoch=2)
    resumed = make_pada_trainer(tiny_space, digits, seed=5)
    resumed.resume(tmp_path)
    resumed.fit()
    sa, sb = straight.supernet.state_dict(), resumed.supernet.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(straight.loader.data_order.prob, resumed.loader.data_order.prob)
    assert all(np.array_equal(straight.sampler.prob[k], resumed.sampler.prob[k]) for k in straight.sampler.prob)


def test_bad_settings():
    with pytest.raises(ConfigError, match="tau_max"):
        PADASampler(NB201Space(), tau_max=2.0)


def test_path_sampling_under_a_space_rule_is_the_product_conditioned_on_the_rule():
    """NAS-Bench-Graph excludes the all-skip cell: paths are drawn from the per-choice product distribution
    conditioned on being an arch (DARTS, whose rule excludes most combinations, is refused in test_differentiable)."""
    from nasframe.core.space import DataSpec
    from search_spaces.gnn_bench import GNNBenchSpace

    space = GNNBenchSpace(DataSpec(1433, (1, 1), 7), ops=["gcn", "skip"])
    sampler = PADASampler(space, seed=0)
    ops = [c for c in space.choices if c.name != "link"]
    for c in ops:
        assert c.options == ("gcn", "skip")
        sampler.prob[c.name] = np.array([0.1, 0.9])
    draws = [sampler.sample() for _ in range(20_000)]
    assert all(space.contains(a) for a in draws)
    all_skip = 0.9 ** len(ops)
    expected = (0.9 - all_skip) / (1 - all_skip)  # P(op_0 = skip | not every op skip)
    assert np.mean([a[ops[0].name] == "skip" for a in draws]) == pytest.approx(expected, abs=0.015)


def test_elastic_choices_record_the_gradient_norm_of_the_weights_their_option_runs():
    """MobileNet's choices hold no weights of their own; PA&DA's path importance for them is the gradient norm
    of the layers they size (only the active slices, and for depth only the blocks that run, get a gradient)."""
    from nasframe.core.space import DataSpec
    from search_spaces.mobilenet import MobileNetSpace, depth_choice, expand_choice, kernel_choice

    space = MobileNetSpace(DataSpec(1, (8, 8), 10), stem_channels=8, stage_channels=[8, 16], stage_strides=[1, 2],
                           stage_se=[False, True], stage_activation=["relu", "hswish"], head_channels=32, dropout=0.0)
    torch.manual_seed(0)
    supernet = space.build_supernet()
    arch = space.largest().replace(**{depth_choice(2): "2", kernel_choice(2, 1): "3", expand_choice(2, 2): "3"})
    supernet.set_arch(arch)
    supernet(torch.randn(4, 1, 8, 8)).sum().backward()
    result = supernet.path_grad_norms()

    def norm(*modules):
        params = {id(p): p for m in modules for p in m.parameters()}.values()
        return torch.cat([p.grad.flatten() for p in params if p.grad is not None]).norm()

    stage = supernet.stages[1]
    first, second = stage[0], stage[1]
    assert torch.allclose(result[kernel_choice(2, 1)], norm(first.depthwise.conv))
    assert torch.allclose(result[expand_choice(2, 2)], norm(second.expand.conv, second.expand.bn, second.depthwise.conv,
                                                            second.depthwise.bn, second.project.conv, second.se))
    assert torch.allclose(result[depth_choice(2)], norm(first, second))  # blocks 3 and 4 did not run
    assert all(p.grad is None for block in stage[2:] for p in block.parameters())
    assert result[kernel_choice(2, 3)] is None and result[expand_choice(2, 4)] is None  # skipped blocks

    sampler = PADASampler(space, seed=0)
    sampler.record(arch, result)
    sampler.end_epoch(epoch=1, epochs=2)  # tau = 1/2: the options seen get more than the uniform share
    assert sampler.prob[depth_choice(2)][space.choice(depth_choice(2)).index("2")] > 1 / 3
    assert sampler.prob[kernel_choice(2, 3)] == pytest.approx([1 / 3] * 3)  # never ran: uniform
