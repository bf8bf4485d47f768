"""The sandwich rule: the archs of each step, gradient accumulation before one optimiser step, in-place
distillation to the largest arch's detached predictions, exact resume; on a toy elastic space (any space whose
options are ordered by size) and on the MobileNet space."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasframe.core.choice import Choice
from nasframe.core.elastic import ElasticChoice, ElasticConv2d
from nasframe.core.modules import Supernet
from nasframe.core.space import SearchSpace
from nasframe.data.base import InMemoryLoader, TensorSplit
from nasframe.errors import ConfigError
from nasframe.export import extract
from nasframe.sampling.base import build_sampler
from nasframe.sampling.group import PathGroup, group_backward
from nasframe.sampling.sandwich import LARGEST, SMALLEST, SandwichSampler
from nasframe.training import SupernetTrainer, TrainerConfig
from search_spaces.mobilenet import MobileNetSpace
from search_spaces.nb201 import NB201Space

WIDTHS = (2, 4, 8)


class ToyNet(nn.Module):
    """Flattened 8x8 image -> 1x1 conv to ``hidden`` units -> ReLU -> ``scale`` x -> 1x1 conv to 10 logits."""

    def __init__(self, hidden: nn.Module, out: nn.Module) -> None:
        super().__init__()
        self.hidden, self.out = hidden, out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(x.flatten(1)[:, :, None, None]))).flatten(1)


class ToySupernet(ToyNet, Supernet):
    def __init__(self) -> None:
        super().__init__(ElasticConv2d(64, max(WIDTHS)), ElasticConv2d(max(WIDTHS), 10, bias=True))
        self.width = ElasticChoice("width", {str(w): w for w in WIDTHS},
                                   [(self.hidden, "active_out"), (self.out, "active_in")])


class ToySpace(SearchSpace):
    """One elastic width choice, options from narrow to wide."""

    name = "toy"
    options_ordered_by_size = True

    def _make_choices(self):
        return [Choice("width", tuple(str(w) for w in WIDTHS))]

    def build_supernet(self) -> ToySupernet:
        return ToySupernet()

    def build_subnet(self, arch) -> ToyNet:
        w = int(self.validate(arch)["width"])
        return ToyNet(nn.Conv2d(64, w, 1, bias=False), nn.Conv2d(w, 10, 1))


@pytest.fixture
def toy() -> ToySpace:
    return ToySpace()


def make_trainer(space, data, epochs=2, seed=0, run_dir=None, **sampler_settings):
    torch.manual_seed(seed)
    config = TrainerConfig(epochs=epochs, batch_size=32, lr=0.05, grad_clip=0.0, progress=False)
    sampler = SandwichSampler(space, seed=seed, **sampler_settings)
    return SupernetTrainer(space.build_supernet(), sampler, InMemoryLoader(data, 32, seed=seed), config,
                           run_dir=run_dir, space_description=space.describe())


def small_digits(digits, n=128):
    return TensorSplit(digits.train.x[:n], digits.train.y[:n])


# -- the archs of a step ---------------------------------------------------------------------------------
def test_each_group_is_the_largest_the_smallest_and_k_uniform_archs():
    space = MobileNetSpace()
    sampler = SandwichSampler(space, seed=0, num_random=3)
    depths = Counter()
    for _ in range(300):
        group = sampler.sample_group()
        assert len(group.paths) == 5 and group.teacher is None
        assert group.paths[LARGEST] == space.largest() and group.paths[SMALLEST] == space.smallest()
        assert space.format(group.paths[LARGEST]).startswith("d4,4,4,4,4|k7e6,")
        for arch in group.paths[2:]:
            assert space.canonical(arch) == arch
            depths[arch["stage3_depth"]] += 1
    assert set(depths) == {"2", "3", "4"} and all(abs(n / 900 - 1 / 3) < 0.06 for n in depths.values())
    distilled = SandwichSampler(space, inplace_distillation=True, temperature=2.0).sample_group()
    assert distilled.teacher == LARGEST and distilled.temperature == 2.0 and distilled.order()[0] == LARGEST


def test_spaces_without_ordered_options_and_bad_settings_are_refused(toy):
    with pytest.raises(ConfigError, match="sandwich\\) cannot train space 'nb201'.*does not order its options by size"):
        build_sampler({"name": "sandwich"}, NB201Space(), seed=0)
    with pytest.raises(ConfigError, match="num_random must be >= 0"):
        SandwichSampler(toy, num_random=-1)
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        SandwichSampler(toy, temperature=0.0)
    with pytest.raises(ConfigError, match="sampler.num_randoms: unknown key"):
        build_sampler({"name": "sandwich", "num_randoms": 1}, toy, seed=0)
    with pytest.raises(ConfigError, match="teacher index 3"):
        PathGroup((toy.largest(),), teacher=3)


def test_largest_and_smallest_respect_a_restricted_sub_space(toy):
    sub = toy.restrict({"width": ["2", "4"]})
    assert (sub.smallest()["width"], sub.largest()["width"]) == ("2", "4")
    assert (toy.smallest()["width"], toy.largest()["width"]) == ("2", "8")


def test_sampler_state_resumes_the_same_groups():
    space = MobileNetSpace()
    sampler = SandwichSampler(space, seed=1)
    sampler.sample_group()
    state = sampler.state_dict()
    ahead = [sampler.sample_group() for _ in range(3)]
    other = SandwichSampler(space, seed=99)
    other.load_state_dict(state)
    assert [other.sample_group() for _ in range(3)] == ahead


# -- the training step -----------------------------------------------------------------------------------
def hand_step(supernet, group, x, y):
    """The step by hand: each path's loss (the teacher's detached soft predictions as the others' targets),
    and the sum of the per-path gradients, each path differentiated on its own."""
    T = group.temperature
    targets, losses, grads = None, [], {name: torch.zeros_like(p) for name, p in supernet.named_parameters()}
    for k in group.order():
        supernet.set_arch(group.paths[k])
        supernet.zero_grad(set_to_none=True)
        logits = supernet(x)
        if targets is None:
            loss = -torch.log_softmax(logits, 1)[torch.arange(len(y)), y].mean()
        else:
            log_q = logits / T - torch.logsumexp(logits / T, dim=1, keepdim=True)
            loss = T * T * -(targets * log_q).sum(1).mean()
        if k == group.teacher:
            with torch.no_grad():
                targets = torch.exp(logits / T) / torch.exp(logits / T).sum(1, keepdim=True)
        loss.backward()
        losses.append(loss.item())
        for name, p in supernet.named_parameters():
            if p.grad is not None:
                grads[name] += p.grad
    return losses, grads


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
@pytest.mark.parametrize("distill", [False, True])
def test_one_step_sums_the_gradients_of_all_paths_then_steps_once(toy, digits, distill):
    trainer = make_trainer(toy, small_digits(digits), num_random=2, inplace_distillation=distill, temperature=2.0)
    group = copy.deepcopy(trainer.sampler).sample_group()  # the group the next step will train
    x, y = digits.train.x[:32], digits.train.y[:32]
    expected_losses, expected_grads = hand_step(copy.deepcopy(trainer.supernet), group, x, y)

    routed, seen = [], []
    route = trainer.supernet.set_path
    trainer.supernet.set_path = lambda arch: (routed.append(arch), route(arch))[1]
    step = trainer.optimizer.step

    def counting_step(*args, **kwargs):
        seen.append({name: p.grad.clone() for name, p in trainer.supernet.named_parameters() if p.grad is not None})
        return step(*args, **kwargs)

    trainer.optimizer.step = counting_step
    loss, hits = trainer.train_step(x, y)
    assert routed == [group.paths[k] for k in group.order()]
    assert [a["width"] for a in routed[:2]] == ["8", "2"]  # largest, smallest, then the random ones
    assert len(seen) == 1  # one optimiser step for the whole group
    assert loss.item() == pytest.approx(sum(expected_losses), rel=1e-5)
    assert set(seen[0]) == set(expected_grads)
    for name, grad in seen[0].items():
        assert torch.allclose(grad, expected_grads[name], atol=1e-6), name


def test_distillation_target_is_the_largest_archs_detached_prediction(toy, digits):
    """With the target *not* detached, the gradient of the largest arch's weights would also flow through the
    students' losses into the teacher's logits: the trainer's gradients equal the detached hand computation."""
    trainer = make_trainer(toy, small_digits(digits), num_random=0, inplace_distillation=True)
    x, y = digits.train.x[:32], digits.train.y[:32]
    group = PathGroup((toy.largest(), toy.smallest()), teacher=0)
    supernet = trainer.supernet
    supernet.set_arch(group.paths[0])
    teacher = supernet(x)
    p = torch.softmax(teacher, 1)
    supernet.set_arch(group.paths[1])
    student = supernet(x)
    undetached = F.cross_entropy(teacher, y) - (p * torch.log_softmax(student, 1)).sum(1).mean()
    wrong = torch.autograd.grad(undetached, supernet.hidden.weight)[0]
    supernet.zero_grad(set_to_none=True)
    _, expected = hand_step(copy.deepcopy(supernet), group, x, y)
    trainer.step.supernet = supernet
    loss, _ = group_backward(trainer.step, group, x, y)
    soft = -(p.detach() * torch.log_softmax(student, 1)).sum(1).mean()
    assert loss.item() == pytest.approx((F.cross_entropy(teacher, y) + soft).item(), rel=1e-6)
    assert torch.allclose(supernet.hidden.weight.grad, expected["hidden.weight"], atol=1e-6)
    assert not torch.allclose(supernet.hidden.weight.grad, wrong, atol=1e-4)


def test_sandwich_training_resumes_exactly(toy, digits, tmp_path):
    data = small_digits(digits)
    straight = make_trainer(toy, data, epochs=4, inplace_distillation=True)
    straight.fit()
    first = make_trainer(toy, data, epochs=4, run_dir=tmp_path, inplace_distillation=True)
    first.fit(until_epoch=2)
    resumed = make_trainer(toy, data, epochs=4, seed=7, inplace_distillation=True)
    resumed.resume(tmp_path)
    resumed.fit()
    a, b = straight.supernet.state_dict(), resumed.supernet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.history == resumed.history
    assert straight.sampler.sample_group() == resumed.sampler.sample_group()


def test_toy_subnet_extraction_works_for_any_elastic_space(toy):
    supernet = toy.build_supernet()
    x = torch.randn(3, 1, 8, 8)
    for arch in (toy.smallest(), toy.largest()):
        subnet = extract(toy, supernet, arch)
        assert torch.equal(supernet(x), subnet(x))


def test_a_sandwich_step_on_the_mobilenet_space(digits):
    space = MobileNetSpace(digits.spec, stem_channels=8, stage_channels=[8], stage_strides=[2], stage_se=[True],
                           stage_activation=["hswish"], head_channels=16, dropout=0.0)
    trainer = make_trainer(space, small_digits(digits, 64), num_random=1, inplace_distillation=True)
    before = {k: v.clone() for k, v in trainer.supernet.state_dict().items()}
    loss, hits = trainer.train_step(digits.train.x[:32], digits.train.y[:32])
    assert torch.isfinite(loss) and 0 <= int(hits) <= 32
    after = trainer.supernet.state_dict()
    assert not torch.equal(before["stages.0.3.depthwise.conv.weight"], after["stages.0.3.depthwise.conv.weight"])
    assert np.isclose(trainer.scheduler.last_epoch, 1)
