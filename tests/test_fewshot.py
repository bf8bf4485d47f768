"""Few-shot splits: partition and routing, subnet equality through the router, gradient-matching maths."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from nasframe.core.choice import Choice
from nasframe.core.modules import OpChoice, Supernet
from nasframe.core.space import SearchSpace
from nasframe.errors import InvalidArchError
from nasframe.export import extract
from nasframe.sampling.fewshot import (
    best_bipartition,
    build_fewshot,
    check_partition,
    gradient_matching_split,
    option_gradient_distances,
    split_exhaustive,
)


def test_exhaustive_split_partitions_the_space_and_routes_by_option(cifar_like_space, rng):
    space = cifar_like_space
    subspaces = split_exhaustive(space, "edge_1_0")
    assert len(subspaces) == 5 and all(sub.size == 5**5 for sub in subspaces)
    check_partition(space, subspaces)
    fewshot = build_fewshot(space.build_supernet(), subspaces)
    for _ in range(50):
        arch = space.sample(rng)
        index = fewshot.route(arch)
        assert subspaces[index].choice("edge_1_0").options == (arch["edge_1_0"],)
    with pytest.raises(ValueError, match="overlap"):
        check_partition(space, [space.restrict({"edge_1_0": ["none", "skip_connect"]}), space.restrict({"edge_1_0": ["none", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]})])


def test_sub_supernets_start_as_copies_and_train_independently(cifar_like_space, rng):
    space = cifar_like_space
    one_shot = space.build_supernet()
    fewshot = build_fewshot(one_shot, split_exhaustive(space, "edge_1_0"))
    reference = one_shot.state_dict()
    for sub in fewshot.supernets:
        assert all(torch.equal(v, reference[k]) for k, v in sub.state_dict().items())
        assert all(p.data_ptr() != q.data_ptr() for p, q in zip(sub.parameters(), one_shot.parameters()))
    arch = space.sample(rng).replace(edge_1_0="nor_conv_3x3")
    fewshot.set_arch(arch)
    opt = torch.optim.SGD(fewshot.parameters(), lr=0.5)
    opt.zero_grad(set_to_none=True)
    fewshot(torch.randn(4, 3, 32, 32)).sum().backward()
    opt.step()
    moved = [i for i, sub in enumerate(fewshot.supernets)
             if any(not torch.equal(v, reference[k]) for k, v in sub.state_dict().items())]
    assert moved == [fewshot.route(arch)] == [3]


def test_extract_through_the_router_equals_the_sub_supernet_path(cifar_like_space, rng):
    space = cifar_like_space
    fewshot = build_fewshot(space.build_supernet(), split_exhaustive(space, "edge_2_1"))
    for sub in fewshot.supernets:  # make the copies differ, so that routing to the wrong one would show
        with torch.no_grad():
            for p in sub.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    fewshot.eval()
    x = torch.randn(3, 3, 32, 32)
    for _ in range(5):
        arch = space.sample(rng)
        subnet = extract(space, fewshot, arch)
        with torch.no_grad():
            assert (fewshot(x) - subnet(x)).abs().max().item() <= 1e-6


def test_router_rejects_archs_outside_every_sub_space(cifar_like_space):
    space = cifar_like_space
    fewshot = build_fewshot(space.build_supernet(), split_exhaustive(space, "edge_1_0")[:2])
    arch = space.sample(np.random.default_rng(0)).replace(edge_1_0="avg_pool_3x3")
    with pytest.raises(InvalidArchError, match="lies in 0 sub-spaces"):
        fewshot.set_arch(arch)


def test_best_bipartition_on_a_hand_made_matrix():
    # options 0,1 agree; 2,3,4 agree; the groups are far apart
    d = np.full((5, 5), 1.0)
    for group in ((0, 1), (2, 3, 4)):
        for i in group:
            for j in group:
                d[i, j] = 0.1
    np.fill_diagonal(d, 0.0)
    small, large, cut = best_bipartition(d)
    assert (small, large) == ((0, 1), (2, 3, 4))
    assert cut == pytest.approx(6 * 1.0)  # 2 x 3 separated pairs at distance 1


# -- gradient matching on a space where the answer is known by construction ---------------------------------
@dataclass
class ToyConfig:
    pass


class ToyNet(Supernet):
    """stem -> OpChoice(a, a2, b, b2, b3) -> head; a2 is a copy of a, b2 and b3 copies of b."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Linear(6, 8)
        a, b = nn.Linear(8, 8), nn.Sequential(nn.Tanh(), nn.Linear(8, 8))
        ops = {"a": a, "a2": _copy(a), "b": b, "b2": _copy(b), "b3": _copy(b)}
        self.mix = OpChoice("op", ops)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.mix(torch.relu(self.stem(x))))


def _copy(module):
    import copy

    return copy.deepcopy(module)


class ToySpace(SearchSpace):
    name = "toy"
    Config = ToyConfig

    def _make_choices(self):
        return [Choice("op", ("a", "a2", "b", "b2", "b3"))]

    def build_supernet(self):
        return ToyNet()

    def build_subnet(self, arch):
        raise NotImplementedError


def test_gradient_matching_groups_options_whose_gradients_agree():
    space = ToySpace()
    supernet = ToyNet()
    batches = [(torch.randn(16, 6), torch.randint(0, 3, (16,))) for _ in range(3)]
    d = option_gradient_distances(supernet, space, "op", batches, np.random.default_rng(0))
    assert d.shape == (5, 5) and np.allclose(d, d.T)
    assert d[0, 1] == pytest.approx(0, abs=1e-9) and d[2, 3] == pytest.approx(0, abs=1e-9) and d[2, 4] == pytest.approx(0, abs=1e-9)
    assert d[0, 2] > 1e-3
    parts, decisions = gradient_matching_split(supernet, space, batches, max_subnets=2)
    assert decisions[0].choice == "op" and decisions[0].groups == (("a", "a2"), ("b", "b2", "b3"))
    assert sorted(p.choice("op").options for p in parts) == [("a", "a2"), ("b", "b2", "b3")]
    check_partition(space, parts)


def test_gradient_matching_split_recurses_within_the_budget(cifar_like_space):
    space = cifar_like_space.restrict({})  # a copy
    supernet = cifar_like_space.build_supernet()
    batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)))]
    parts, decisions = gradient_matching_split(supernet, space, batches, max_subnets=3, choices=["edge_1_0", "edge_3_2"])
    assert len(parts) == 3 and len(decisions) == 2
    check_partition(cifar_like_space, parts)
    assert all(d.choice in ("edge_1_0", "edge_3_2") for d in decisions)


# -- few-shot training through the trainer -------------------------------------------------------------------
def make_fewshot_trainer(space, digits, run_dir=None, epochs=4, seed=0, trainer_settings=None, **settings):
    from nasframe.data.base import InMemoryLoader
    from nasframe.sampling.fewshot import FewShotSampler
    from nasframe.training import SupernetTrainer, TrainerConfig

    torch.manual_seed(seed)
    sampler = FewShotSampler(space, seed=seed, **settings)
    loader = InMemoryLoader(digits.train, 128, seed=seed)
    config = TrainerConfig(epochs=epochs, batch_size=128, lr=0.05, progress=False, **(trainer_settings or {}))
    return SupernetTrainer(space.build_supernet(), sampler, loader, config, run_dir=run_dir,
                           space_description=space.describe())


def test_split_happens_after_the_warmup_and_resume_crosses_it_exactly(tiny_space, digits, tmp_path):
    from nasframe.sampling.fewshot import FewShotSupernet

    straight = make_fewshot_trainer(tiny_space, digits, choice="edge_1_0", warmup_fraction=0.5)
    straight.fit(until_epoch=2)
    assert not isinstance(straight.supernet, FewShotSupernet)
    straight.fit()
    assert isinstance(straight.supernet, FewShotSupernet) and len(straight.supernet.supernets) == 5
    assert straight._schedule_start == 2  # fresh cosine schedule from the split on

    first = make_fewshot_trainer(tiny_space, digits, run_dir=tmp_path, choice="edge_1_0", warmup_fraction=0.5)
    first.fit(until_epoch=3)  # the checkpoint holds the split structure
    resumed = make_fewshot_trainer(tiny_space, digits, choice="edge_1_0", warmup_fraction=0.5, seed=9)
    resumed.resume(tmp_path)
    assert isinstance(resumed.supernet, FewShotSupernet)
    resumed.fit()
    sa, sb = straight.supernet.state_dict(), resumed.supernet.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_gradient_matching_split_inside_training(tiny_space, digits):
    trainer = make_fewshot_trainer(tiny_space, digits, epochs=2, split="gradient", warmup_fraction=0.5,
                                   max_subnets=3, grad_batches=1, grad_choices=["edge_1_0", "edge_3_2"])
    trainer.fit()
    sampler = trainer.sampler
    assert len(sampler.partition) == 3 and len(sampler.decisions) == 2
    check_partition(tiny_space, sampler.subspaces())
    assert "gradient split into 3 sub-supernets" in sampler.describe_structure()


def test_bad_fewshot_settings(tiny_space):
    from nasframe.errors import ConfigError
    from nasframe.sampling.fewshot import FewShotSampler

    with pytest.raises(ConfigError, match="no choice 'edge_9_9'"):
        FewShotSampler(tiny_space, choice="edge_9_9")
    with pytest.raises(ConfigError, match="unknown split 'halves'"):
        FewShotSampler(tiny_space, split="halves")
    FewShotSampler(tiny_space, split="gradient", choice="edge_9_9")  # the gradient split does not read `choice`


def test_the_default_exhaustive_split_takes_the_space_first_choice(tiny_space):
    from omegaconf import OmegaConf

    from nasframe.cli import compose_config
    from nasframe.sampling.fewshot import FewShotSampler

    settings = OmegaConf.to_container(compose_config("search", ["sampler=fewshot"]).sampler)
    settings.pop("name")
    sampler = FewShotSampler(tiny_space, **settings)
    first = tiny_space.choices[0]
    fewshot = sampler.restructure(tiny_space.build_supernet(), epoch=5, epochs=10, probe_batches=None)
    assert sampler.decisions == [{"choice": first.name, "groups": [[o] for o in first.options]}]
    assert len(fewshot.supernets) == len(first.options)
    assert [r for r in sampler.partition] == [{first.name: [o]} for o in first.options]
