"""Once-for-All's channel sorting (search_spaces/mobilenet_sorting.py): a permutation that keeps the full-width
network's function, after which the narrowest width holds the most important middle channels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nasframe.core.space import DataSpec
from search_spaces.mobilenet import MobileNetSpace, expand_choice
from search_spaces.mobilenet_sorting import importance_order, sort_block_channels, sort_channels

#: two stages (no SE, then SE): every piece the sort permutes
TINY = {
    "stem_channels": 8, "stage_channels": [8, 16], "stage_strides": [1, 2], "stage_se": [False, True],
    "stage_activation": ["relu", "hswish"], "head_channels": 32, "dropout": 0.0,
}
SPACE = MobileNetSpace(DataSpec(1, (8, 8), 10), **TINY)


def trained_supernet(steps: int = 4):
    """A supernet whose weights and BatchNorm statistics moved off their init, so the sort is not trivial."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    supernet = SPACE.build_supernet()
    opt = torch.optim.SGD(supernet.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    supernet.train()
    for arch in [SPACE.largest(), SPACE.smallest(), *(SPACE.sample(rng) for _ in range(steps))]:
        supernet.set_arch(arch)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(supernet(x), y).backward()
        opt.step()
    return supernet.eval()


def blocks(supernet):
    return [block for stage in supernet.stages for block in stage]


def test_importance_order_is_descending_l1_norm_along_the_dimension():
    weight = torch.tensor([[1.0, -5.0, 2.0], [0.0, 1.0, -2.0]])  # column L1 norms 1, 6, 4
    assert importance_order(weight, dim=1).tolist() == [1, 2, 0]
    assert importance_order(weight, dim=0).tolist() == [0, 1]  # row norms 8 and 3


def test_sorting_keeps_the_full_width_function_and_puts_the_important_channels_first():
    supernet = trained_supernet()
    x = torch.randn(8, 1, 8, 8)
    supernet.set_arch(SPACE.largest())
    with torch.no_grad():
        before = supernet(x)
    importance = [block.project.conv.weight.detach().abs().sum(dim=(0, 2, 3)).clone() for block in blocks(supernet)]
    orders = sort_channels(supernet)
    with torch.no_grad():
        after = supernet(x)
    assert torch.allclose(before, after, atol=1e-5)  # a permutation: the same network
    assert any(order.tolist() != sorted(order.tolist()) for order in orders)  # and not the identity here
    narrowest = min(SPACE.expand_ratios)
    positions = [(stage, b) for stage, blocks_ in zip(SPACE.layout.stages, supernet.stages) for b in range(len(blocks_))]
    for block, old, order, (stage, b) in zip(blocks(supernet), importance, orders, positions):
        new = block.project.conv.weight.detach().abs().sum(dim=(0, 2, 3))
        assert torch.all(new[:-1] >= new[1:])  # descending importance
        assert torch.allclose(new, old[order])  # the projection's channels moved with the order
        keep = stage.mid_width(b, narrowest)  # the narrowest expand ratio keeps the channels of highest importance
        assert torch.allclose(old[order[:keep]].sort().values, torch.topk(old, keep).values.sort().values)


def test_squeeze_excite_hidden_units_are_sorted_and_narrow_widths_change_function():
    supernet = trained_supernet()
    se_blocks = [block for block in blocks(supernet) if block.se is not None]
    assert se_blocks
    x = torch.randn(4, 1, 8, 8)
    arch = SPACE.largest().replace(**{expand_choice(2, 1): SPACE.choice(expand_choice(2, 1)).options[0]})
    supernet.set_arch(arch)
    with torch.no_grad():
        narrow_before = supernet(x)
    sort_block_channels(se_blocks[0])
    for block in se_blocks[:1]:
        hidden = block.se.expand.weight.detach().abs().sum(dim=(0, 2, 3))
        assert torch.all(hidden[:-1] >= hidden[1:])
    with torch.no_grad():
        narrow_after = supernet(x)
    assert not torch.allclose(narrow_before, narrow_after)  # the narrow subnet now holds other channels
