"""The active-slice step of elastic supernets (nasframe/training/active_step.py): SGD on the slices that ran only.

Properties: with every parameter whole it is torch.optim.SGD bit for bit; weights outside the slices that ran stay
bit for bit unchanged through training steps (a plain SGD moves them: weight decay and stale momentum); a path
trained in the supernet equals the same subnet trained standalone with torch.optim.SGD; paths whose slices do
not nest update exactly their union."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasframe.core.elastic import ElasticConv2d
from nasframe.core.space import DataSpec
from nasframe.data.base import InMemoryLoader, TensorSplit
from nasframe.export import extract
from nasframe.sampling.uniform import UniformSampler
from nasframe.training import SupernetTrainer, TrainerConfig
from nasframe.training.active_step import ActiveRegions, ActiveSliceSGD, covering_region, region_mask
from nasframe.training.config import build_optimizer
from search_spaces.mobilenet import MobileNetSpace

TINY = {
    "stem_channels": 8, "stage_channels": [8, 16], "stage_strides": [1, 2], "stage_se": [False, True],
    "stage_activation": ["relu", "hswish"], "head_channels": 32, "dropout": 0.0,
}
SGD = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)


@pytest.fixture(scope="module")
def space() -> MobileNetSpace:
    return MobileNetSpace(DataSpec(1, (8, 8), 10), **TINY)


def batch(space, seed=0, n=16):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, *space.data.input_shape, generator=generator),
            torch.randint(0, space.data.num_classes, (n,), generator=generator))


def test_with_every_parameter_whole_it_is_torch_sgd_bit_for_bit():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    twin = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    twin.load_state_dict(model.state_dict())
    ours = ActiveSliceSGD(model.parameters(), ActiveRegions(model), **SGD)
    reference = torch.optim.SGD(twin.parameters(), **SGD)
    for step in range(4):
        x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
        for net, opt in ((model, ours), (twin, reference)):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), name
    assert set(ours.state_dict()["state"][0]) == set(reference.state_dict()["state"][0])  # SGD's state format


def test_dampening_is_refused():
    with pytest.raises(ValueError, match="dampening"):
        ActiveSliceSGD(nn.Linear(2, 2).parameters(), ActiveRegions(nn.Linear(2, 2)), lr=0.1, momentum=0.9, dampening=0.1)


def test_the_covering_region_is_the_one_holding_the_others():
    shape = (8, 8)
    wide, narrow = (slice(0, 8), slice(0, 6)), (slice(0, 4), slice(0, 2))
    assert covering_region([narrow, wide], shape) == wide
    assert covering_region([(slice(0, 4), slice(0, 8)), (slice(0, 8), slice(0, 4))], shape) is None
    crop5, crop3 = (slice(None), slice(1, 6)), (slice(None), slice(2, 5))
    assert covering_region([crop3, crop5], (2, 7)) == crop5
    mask = region_mask([(slice(0, 1), slice(0, 2)), (slice(0, 2), slice(0, 1))], torch.zeros(3, 3))
    assert mask.sum() == 3 and mask[0, 0] and mask[0, 1] and mask[1, 0] and not mask[1, 1]


def _changed(before, after):
    return {name: ~torch.eq(before[name], after[name]) for name in before}


@pytest.mark.parametrize("active_slices", [True, False])
def test_weights_off_the_path_never_move_through_training(space, digits, active_slices):
    """Through uniform training steps (momentum and weight decay on), an element of an elastic weight changes
    only in a step whose path ran it; a whole-tensor SGD moves the others (the defect this step removes)."""
    torch.manual_seed(0)
    data = TensorSplit(digits.train.x[:96], digits.train.y[:96])
    config = TrainerConfig(epochs=1, batch_size=16, lr=0.1, grad_clip=0.0, progress=False, active_slices=active_slices)
    trainer = SupernetTrainer(space.build_supernet(), UniformSampler(space, seed=0), InMemoryLoader(data, 16, seed=0),
                              config, space_description=space.describe())
    assert isinstance(trainer.optimizer, ActiveSliceSGD) == active_slices
    recorder = ActiveRegions(trainer.supernet)
    moved_off_path = 0
    for step, (x, y, _) in enumerate(trainer.loader.epoch()):
        before = {name: p.detach().clone() for name, p in trainer.supernet.named_parameters()}
        with recorder.recording():  # the regions this step runs, recorded independently of the optimiser
            trainer.train_step(x, y)
        after = dict(trainer.supernet.named_parameters())
        for name, changed in _changed(before, {k: v.detach() for k, v in after.items()}).items():
            regions = recorder.of(after[name])
            if regions is None:
                continue
            off_path = changed & ~region_mask(regions, changed)
            moved_off_path += int(off_path.sum())
            if active_slices:
                assert not off_path.any(), f"step {step}: {name} moved {int(off_path.sum())} weights off the path"
    if not active_slices:
        assert moved_off_path > 0
    assert step >= 4


def test_a_path_trained_in_the_supernet_equals_the_subnet_trained_standalone(space):
    """The smallest path trained in the supernet with the active-slice step, and its extracted subnet trained with
    torch.optim.SGD from the same weights on the same batches, end with the same weights and BN statistics."""
    torch.manual_seed(0)
    supernet = space.build_supernet()
    arch = space.smallest()
    subnet = extract(space, supernet, arch)
    config = TrainerConfig(lr=0.1, weight_decay=5e-4, progress=False)
    regions = ActiveRegions(supernet)
    optimizer = build_optimizer(config, list(supernet.parameters()), 0.1, regions)
    reference = build_optimizer(TrainerConfig(lr=0.1, weight_decay=5e-4, active_slices=False),
                                list(subnet.parameters()), 0.1)
    supernet.train(), subnet.train()
    for step in range(4):
        x, y = batch(space, seed=step)
        supernet.set_arch(arch)
        optimizer.zero_grad(set_to_none=True)
        with regions.recording():
            F.cross_entropy(supernet(x), y).backward()
        optimizer.step()
        reference.zero_grad(set_to_none=True)
        F.cross_entropy(subnet(x), y).backward()
        reference.step()
    trained = extract(space, supernet, arch).state_dict()
    for name, value in subnet.state_dict().items():
        assert torch.allclose(trained[name].float(), value.float(), atol=1e-5), name


def test_paths_whose_slices_do_not_nest_update_exactly_their_union():
    torch.manual_seed(0)
    conv = ElasticConv2d(8, 8)
    start = conv.weight.detach().clone()
    regions = ActiveRegions(conv)
    optimizer = ActiveSliceSGD(conv.parameters(), regions, **SGD)
    x = torch.randn(2, 8, 3, 3)
    with regions.recording():
        for out_width, in_width in ((4, 8), (8, 4)):
            conv.active_out, conv.active_in = out_width, in_width
            conv(x[:, :in_width]).square().mean().backward()
    optimizer.step()
    union = region_mask(regions.of(conv.weight), conv.weight)
    assert int(union.sum()) == 8 * 8 - 4 * 4
    assert torch.equal(conv.weight.detach()[~union], start[~union])
    expected = start - 0.1 * (conv.weight.grad + 5e-4 * start) * (1 + 0.9)  # nesterov first step: g + 0.9 g
    assert torch.allclose(conv.weight.detach()[union], expected[union], atol=1e-7)


def test_forwards_without_gradients_are_not_recorded(space):
    supernet = space.build_supernet()
    regions = ActiveRegions(supernet)
    assert regions
    supernet.set_arch(space.smallest())
    with regions.recording(), torch.no_grad():
        supernet(batch(space)[0])
    assert all(regions.of(p) is None for p in supernet.parameters())
    assert not ActiveRegions(nn.Linear(2, 2))  # nothing elastic: the trainer keeps torch's optimiser
    rng = np.random.default_rng(0)
    supernet.set_arch(space.sample(rng))
    with regions.recording():
        supernet(batch(space)[0]).sum().backward()
    assert any(regions.of(p) is not None for p in supernet.parameters())


def test_a_parameter_that_some_path_ran_whole_is_updated_whole(space):
    """In a multi-path step, a parameter the largest path runs whole has no region (its update is torch's, on the
    whole tensor), while the smallest path alone records regions."""
    supernet = space.build_supernet()
    regions = ActiveRegions(supernet)
    elastic = [p for layer in regions.layers for p in layer.parameters(recurse=False)]
    x = batch(space)[0]
    with regions.recording():
        supernet.set_arch(space.smallest())
        supernet(x).sum().backward()
    assert any(regions.of(p) is not None for p in elastic)
    with regions.recording():
        for arch in (space.smallest(), space.largest()):
            supernet.set_arch(arch)
            supernet(x).sum().backward()
    assert all(regions.of(p) is None for p in elastic)
