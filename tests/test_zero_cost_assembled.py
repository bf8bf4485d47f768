"""AZ-NAS (nasframe/evaluation/zero_cost/az_nas.py) and NAC (nasframe/evaluation/zero_cost/nac.py): their
definitions pinned on tiny networks with values known by hand, and both run through the zero-cost evaluator.

NAC's tests need torch-geometric (the graph spaces' layers) and skip without it.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasframe.core.graph import GraphNetwork, bind_graph
from nasframe.core.space import DataSpec
from nasframe.data.base import TensorSplit
from nasframe.errors import ConfigError
from nasframe.evaluation.zero_cost.az_nas import (
    AZNAS,
    az_nas_components,
    jacobian_score,
    spectral_entropy,
    stage_features,
)
from nasframe.evaluation.zero_cost.base import PROXIES, ProxyBatch
from nasframe.evaluation.zero_cost.evaluator import ZeroCostConfig, ZeroCostEvaluator
from nasframe.evaluation.zero_cost.nac import NAC
from nasframe.evaluation.zero_cost.prepare import initialise, set_batchnorm_mode
from search_spaces.nb201 import NB201Space

AZ = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")
CONV = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
ARCHS = [
    CONV,
    "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",  # 4 x input
    "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",  # every cell the identity
    "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # every cell outputs zero (dead)
]


@pytest.fixture(autouse=True)
def _one_thread(_two_threads) -> None:
    torch.set_num_threads(1)


def spectrum_rows(variances: list[float]) -> torch.Tensor:
    """Rows ``+-sqrt(d v_i) e_i`` (2d of them): mean zero, channel covariance exactly ``diag(variances)``."""
    d = len(variances)
    scaled = torch.diag(torch.tensor(variances, dtype=torch.float64).mul(d).sqrt())
    return torch.cat([scaled, -scaled])


def entropy(p: list[float]) -> float:
    total = sum(p)
    return -sum(v / total * math.log(v / total) for v in p if v > 0)


class Blocks(nn.Module):
    """A network whose stage features are its input and the output of each of ``blocks``."""

    def __init__(self, *blocks: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).flatten(1).sum(1, keepdim=True)


def fixed_linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


# --------------------------------------------------------------------------------------------------------
# AZ-NAS: expressivity, progressivity
# --------------------------------------------------------------------------------------------------------
def test_isotropic_features_have_the_maximal_entropy_log_d_and_rank_one_features_zero():
    for d in (1, 3, 8):
        assert spectral_entropy(spectrum_rows([1.0] * d)) == pytest.approx(math.log(d), abs=1e-12)
    u, v = torch.randn(50, 1, dtype=torch.float64), torch.randn(1, 6, dtype=torch.float64)
    assert spectral_entropy(u @ v) == pytest.approx(0.0, abs=1e-9)


def test_entropy_of_a_known_spectrum_and_its_invariances():
    rows = spectrum_rows([3.0, 1.0, 0.5, 0.0])
    expected = entropy([3.0, 1.0, 0.5])
    assert spectral_entropy(rows) == pytest.approx(expected, abs=1e-12)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    assert spectral_entropy(7.0 * rows @ rotation + 3.0) == pytest.approx(expected, abs=1e-9)  # scale, rotation, shift
    # a (B, C, H, W) map: every position's channel vector is a row
    as_map = rows.reshape(2, 4, 4).permute(0, 2, 1).reshape(2, 4, 2, 2)
    assert spectral_entropy(as_map) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(spectral_entropy(torch.ones(5, 3)))  # no variance: undefined


def test_expressivity_sums_and_progressivity_takes_the_smallest_step_over_stages():
    # stages: the input (isotropic in 4 channels), its first 2 channels (isotropic), a rank-1 projection
    net = Blocks(fixed_linear([[1, 0, 0, 0], [0, 1, 0, 0]]), fixed_linear([[1, 0], [0, 0]]))
    values = az_nas_components(net, spectrum_rows([1.0] * 4).float())
    assert values["az_expressivity"] == pytest.approx(math.log(4) + math.log(2), abs=1e-6)
    assert values["az_progressivity"] == pytest.approx(-math.log(2), abs=1e-6)  # min(log2 - log4, 0 - log2)


# --------------------------------------------------------------------------------------------------------
# AZ-NAS: trainability
# --------------------------------------------------------------------------------------------------------
def test_trainability_is_zero_at_unit_gain_and_symmetric_in_sigma_and_one_over_sigma():
    x = torch.randn(16, 1, requires_grad=True)
    # one channel: the Rademacher vector's mean square is exactly 1, so sigma is the gain |c|
    for c in (2.0, 0.5, -2.0):
        assert jacobian_score(x, c * x) == pytest.approx(2 - abs(c) - 1 / (abs(c) + 1e-6), abs=1e-5)
    assert jacobian_score(x, 2.0 * x) == pytest.approx(jacobian_score(x, 0.5 * x), abs=1e-5)  # sigma <-> 1/sigma
    assert jacobian_score(x, 2.0 * x) == pytest.approx(-0.5, abs=1e-5)
    assert jacobian_score(x, x) == -math.inf  # an identity stage, as the authors' code scores it
    assert jacobian_score(x, x * 1.0) == -math.inf
    assert jacobian_score(x, torch.zeros(16, 1)) == pytest.approx(2 - 1 / 1e-6)  # a dead stage: sigma = 0


def test_a_strided_stage_folds_patches_into_channels():
    """A 2x2 stride-2 convolution from 1 to 1 channel: the pulled-back gradient of a patch is ``w * g``, so
    ``M`` is the kernel as a column and ``sigma = ||w||``."""
    conv = nn.Conv2d(1, 1, 2, stride=2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[0.5, -1.0], [2.0, 0.25]]]]))
    x = torch.randn(4, 1, 6, 6, requires_grad=True)
    sigma = conv.weight.norm().item()
    assert jacobian_score(x, conv(x)) == pytest.approx(2 - sigma - 1 / (sigma + 1e-6), abs=1e-5)
    odd = torch.randn(4, 1, 5, 5, requires_grad=True)  # 5x5 -> 3x3 (padding 1): zero-padded to 6x6 before folding
    padded_conv = nn.Conv2d(1, 2, 3, stride=2, padding=1)
    assert math.isfinite(jacobian_score(odd, padded_conv(odd)))


# --------------------------------------------------------------------------------------------------------
# AZ-NAS on NB201
# --------------------------------------------------------------------------------------------------------
@pytest.fixture
def nb201() -> NB201Space:
    return NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)


def test_nb201_stage_features_are_the_stem_and_every_cell_and_reduction_block(nb201):
    net = set_batchnorm_mode(nb201.build_subnet(nb201.parse(CONV)), "train", None)
    x = torch.randn(8, 3, 8, 8)
    features = stage_features(net, x)
    assert len(features) == 1 + 3 * 1 + 2  # stem, then N cells per stage and two reduction blocks
    shapes = [(4, 8, 8), (4, 8, 8), (8, 4, 4), (8, 4, 4), (16, 2, 2), (16, 2, 2)]
    assert [tuple(f.shape[1:]) for f in features] == shapes
    assert torch.allclose(features[0], net.stem(x)) and torch.allclose(features[-1], net.cells(net.stem(x)))
    assert not net._forward_hooks and not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


def test_az_nas_through_the_evaluator_on_nb201(nb201):
    assert PROXIES.get("az_nas") is AZNAS and AZNAS.settings.batch_size == 64
    data = TensorSplit(torch.randn(80, 3, 8, 8), torch.randint(0, 10, (80,)))
    evaluator = ZeroCostEvaluator(nb201, nb201.build_subnet, ZeroCostConfig(proxy="az_nas"), train=data)
    assert evaluator.components == list(AZ) and evaluator.combined
    assert evaluator.describe()["proxies"]["az_nas"]["settings"] == {
        "init": "kaiming_fan_in", "bn": "train", "input": "noise", "batch_size": 64, "batches": 1}
    archs = [nb201.parse(s) for s in ARCHS]
    values = [evaluator.component_values(a) for a in archs]
    for v in values[:4]:
        assert all(math.isfinite(v[c]) for c in AZ)
        assert v["az_trainability"] < 0
    assert values[4]["az_trainability"] == -math.inf  # identity cells
    assert values[5]["az_expressivity"] == -math.inf  # dead cells: no variance, ranked last
    flops = ZeroCostEvaluator(nb201, nb201.build_subnet, ZeroCostConfig(proxy="flops"))
    assert [v["az_complexity"] for v in values] == [flops(a) for a in archs]

    again = ZeroCostEvaluator(nb201, nb201.build_subnet, ZeroCostConfig(proxy="az_nas"), train=data)
    assert [again.component_values(a) for a in archs] == values  # deterministic

    evaluator.set_reference(archs)
    scores = [evaluator(a) for a in archs]
    assert all(math.isfinite(s) and s <= 0 for s in scores)
    assert scores[5] == min(scores)  # the dead network ranks lowest by the sum of log ranks


def test_az_nas_refuses_graph_batches():
    with pytest.raises(ValueError, match="image networks"):
        AZNAS().compute(nn.Linear(2, 2), ProxyBatch([torch.arange(3)], [torch.zeros(3, dtype=torch.long)], 2, None))


# --------------------------------------------------------------------------------------------------------
# NAC
# --------------------------------------------------------------------------------------------------------
class LabelLogits(GraphNetwork):
    """Logits ``scale * onehot(y)`` for every node: a known output whatever the graph."""

    def __init__(self, labels: torch.Tensor, num_classes: int, scale: float) -> None:
        super().__init__()
        self.logits = nn.Parameter(scale * F.one_hot(labels, num_classes).float())

    def forward_graph(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.logits


@pytest.fixture(scope="module")
def graph():
    pytest.importorskip("torch_geometric", reason="needs the torch-geometric package")
    from test_graphnas_space import random_graph

    return random_graph()


def graph_batch(graph) -> ProxyBatch:
    ids = graph.train_mask.nonzero().flatten()
    return ProxyBatch([ids], [graph.y[ids]], graph.num_classes, None)


def test_nac_is_the_negated_cross_entropy_of_the_untrained_logits(graph):
    scale, k = 2.0, graph.num_classes
    net = bind_graph(LabelLogits(graph.y, k, scale), graph.x, graph.edge_index)
    # every labelled node: CE = -log(e^s / (e^s + k - 1))
    assert NAC().compute(net, graph_batch(graph))["nac"] == pytest.approx(-math.log(1 + (k - 1) * math.exp(-scale)))


def test_nac_on_a_gnn_bench_network_matches_a_direct_computation_with_dropout_off(graph):
    from search_spaces.gnn_bench import GNNBenchSpace

    space = GNNBenchSpace(DataSpec(12, (1, 1), 3), hidden=8)
    arch = space.parse("Arch([0, 1, 1, 2], ['gcn', 'gat', 'sage', 'fc'])")
    torch.manual_seed(0)
    net = bind_graph(space.build_subnet(arch), graph.x, graph.edge_index)
    initialise(net, NAC.settings.init)
    set_batchnorm_mode(net, "train", None)
    batch = graph_batch(graph)
    first, second = NAC().compute(net, batch)["nac"], NAC().compute(net, batch)["nac"]
    assert first == second  # dropout (0.7 in this space) is off
    net.eval()
    with torch.no_grad():
        expected = -F.cross_entropy(net.forward_graph(graph.x, graph.edge_index)[batch.inputs[0]], batch.labels[0])
    assert first == pytest.approx(float(expected), abs=1e-6)


def test_nac_through_the_evaluator_on_gnn_bench(graph):
    from search_spaces.gnn_bench import GNNBenchSpace

    space = GNNBenchSpace(DataSpec(12, (1, 1), 3), hidden=8)
    ids = graph.train_mask.nonzero().flatten()

    def build(arch):
        return bind_graph(space.build_subnet(arch), graph.x, graph.edge_index)

    def evaluator():
        return ZeroCostEvaluator(space, build, ZeroCostConfig(proxy="nac", canonical=False),
                                 train=TensorSplit(ids, graph.y[ids]))

    archs = [space.parse(s) for s in ("Arch([0, 1, 2, 3], ['gcn', 'gin', 'fc', 'cheb'])",
                                      "Arch([0, 0, 0, 0], ['gat', 'sage', 'arma', 'graph'])")]
    scores = [evaluator()(a) for a in archs]
    assert all(math.isfinite(s) and s < 0 for s in scores)
    assert [evaluator()(a) for a in archs] == scores  # deterministic
    nb201 = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)
    images = TensorSplit(torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ConfigError, match="graph networks"):
        ZeroCostEvaluator(nb201, nb201.build_subnet, ZeroCostConfig(proxy="nac"), train=images)
    with pytest.raises(ValueError, match="graph networks"):
        NAC().compute(nb201.build_subnet(nb201.parse(CONV)), ProxyBatch([images.x], [images.y], 10, (3, 8, 8)))


def test_nac_needs_a_bound_graph(graph):
    net = LabelLogits(graph.y, graph.num_classes, 1.0)
    with pytest.raises(ValueError, match="bound"):
        NAC().compute(net, graph_batch(graph))
