"""FairNAS strict fairness: every option of every choice trained exactly once per step, one optimiser step."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from nasframe.core.registry import SAMPLERS
from nasframe.data.base import InMemoryLoader, TensorSplit
from nasframe.errors import ConfigError
from nasframe.sampling.fairnas import FairNASSampler
from nasframe.training import SupernetTrainer, TrainerConfig
from search_spaces.mobilenet import MobileNetSpace
from search_spaces.nb201 import NB201Space


def option_counts(space, paths):
    return {c.name: Counter(path[c.name] for path in paths) for c in space.choices}


def test_every_step_trains_each_option_of_each_choice_exactly_once():
    space = NB201Space()
    sampler = FairNASSampler(space, seed=3)
    first_options = Counter()
    for _ in range(200):
        group = sampler.sample_group()
        assert len(group.paths) == 5 and group.teacher is None
        for name, counts in option_counts(space, group.paths).items():
            assert counts == Counter(space.choice(name).options), name
        first_options[group.paths[0]["edge_1_0"]] += 1
    # the order is random: each option leads the step about as often (200 steps, 5 options: 40 expected)
    assert set(first_options) == set(space.choice("edge_1_0").options)
    assert all(20 <= n <= 60 for n in first_options.values())


def test_unequal_option_counts_repeat_each_option_equally_often():
    space = MobileNetSpace()  # kernel 3, expand 3, depth 3 options, and any 2-option choices
    sampler = FairNASSampler(space, seed=0)
    group = sampler.sample_group()
    for c in space.choices:
        counts = option_counts(space, group.paths)[c.name]
        assert set(counts.values()) == {len(group.paths) // len(c)}, c.name
    assert all(space.contains(path) for path in group.paths)


def test_a_step_that_needs_too_many_paths_is_refused():
    with pytest.raises(ConfigError, match="max_paths"):
        FairNASSampler(NB201Space(), max_paths=4)


def test_registered_and_resumable():
    space = NB201Space()
    assert SAMPLERS.get("fairnas") is FairNASSampler
    a = FairNASSampler(space, seed=1)
    a.sample_group()
    b = FairNASSampler(space, seed=9)
    b.load_state_dict(a.state_dict())
    assert a.sample_group() == b.sample_group()


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_a_trainer_step_trains_the_m_paths_then_updates_once(digits):
    space = NB201Space(digits.spec, channels=4, cells_per_stage=1)
    torch.manual_seed(0)
    sampler = FairNASSampler(space, seed=0)
    data = TensorSplit(digits.train.x[:64], digits.train.y[:64])
    trainer = SupernetTrainer(space.build_supernet(), sampler, InMemoryLoader(data, 32, seed=0),
                              TrainerConfig(epochs=1, batch_size=32, grad_clip=0.0, progress=False),
                              space_description=space.describe())
    routed, steps = [], []
    route = trainer.supernet.set_path
    trainer.supernet.set_path = lambda arch: (routed.append(arch), route(arch))[1]
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda *a, **k: (steps.append(len(routed)), step(*a, **k))[1]
    for _ in range(2):
        trainer.train_step(digits.train.x[:32], digits.train.y[:32])
    assert steps == [5, 10]  # one update after every 5 paths
    for k in (0, 5):
        for name, counts in option_counts(space, routed[k:k + 5]).items():
            assert counts == Counter(space.choice(name).options), name
