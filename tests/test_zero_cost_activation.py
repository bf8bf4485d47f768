"""NASWOT, GradSign and ZiCo: each pinned to its definition on a tiny network, against a value worked out by hand
or an independent straightforward computation, and run through the zero-cost evaluator on a tiny NB201 space."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nasframe.core.graph import GraphNetwork, bind_graph
from nasframe.core.space import DataSpec
from nasframe.data.base import TensorSplit
from nasframe.evaluation.zero_cost import ZeroCostConfig, ZeroCostEvaluator
from nasframe.evaluation.zero_cost.base import PROXIES, ProxyBatch
from nasframe.evaluation.zero_cost.prepare import set_batchnorm_mode
from search_spaces.nb201 import NB201Space


def image_batch(inputs: list[torch.Tensor], labels: list[torch.Tensor], num_classes: int = 3) -> ProxyBatch:
    return ProxyBatch(inputs, labels, num_classes, tuple(inputs[0].shape[1:]))


def small_convnet() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 4, 1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    return set_batchnorm_mode(net, "train", None)


def flat_weight_grads(net: nn.Module) -> np.ndarray:
    return np.concatenate([m.weight.grad.numpy().ravel() for m in net.modules()
                           if isinstance(m, (nn.Conv2d, nn.Linear))])


# -- NASWOT ---------------------------------------------------------------------------------------------------
def test_naswot_is_log_det_of_the_hamming_kernel_worked_by_hand() -> None:
    # units = (a, b, a + b): codes (1,1,1), (1,0,0), (0,1,1); agreements 3 - Hamming distance
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    x = torch.tensor([[1.0, 2.0], [1.0, -2.0], [-1.0, 2.0]])
    kernel = np.array([[3, 1, 2], [1, 3, 0], [2, 0, 3]])  # det 12
    assert np.linalg.det(kernel) == pytest.approx(12)
    value = PROXIES.get("naswot")().compute(net, image_batch([x], [torch.zeros(3, dtype=torch.long)]))
    assert value["naswot"] == pytest.approx(math.log(12))


def test_naswot_sums_layers_and_a_repeated_example_makes_the_kernel_singular() -> None:
    net = small_convnet()
    x = torch.randn(6, 2, 5, 5)
    codes = []
    net[2].register_forward_hook(lambda m, i, o: codes.append(o > 0))
    net[4].register_forward_hook(lambda m, i, o: codes.append(o > 0))
    value = PROXIES.get("naswot")().compute(net, image_batch([x], [torch.zeros(6, dtype=torch.long)]))
    # independent: K[i, j] = units - Hamming distance, over both ReLUs
    c = np.concatenate([t.reshape(6, -1).numpy() for t in codes], axis=1)
    kernel = c.shape[1] - (c[:, None, :] != c[None, :, :]).sum(-1)
    assert value["naswot"] == pytest.approx(np.linalg.slogdet(kernel.astype(float))[1])
    repeated = PROXIES.get("naswot")().compute(net, image_batch([x[[0, 0, 1]]], [torch.zeros(3, dtype=torch.long)]))
    assert repeated["naswot"] == -math.inf


# -- GradSign -------------------------------------------------------------------------------------------------
def test_gradsign_is_the_sum_of_absolute_sign_sums_of_per_example_gradients() -> None:
    net = small_convnet()
    torch.manual_seed(1)
    x, y = torch.randn(20, 2, 5, 5), torch.randint(0, 3, (20,))  # 20 > one chunk of examples
    value = PROXIES.get("gradsign")().compute(net, image_batch([x], [y]))
    signs = []
    for i in range(20):  # the official loop: each example its own forward (BatchNorm on its own statistics)
        net.zero_grad()
        nn.functional.cross_entropy(net(x[i:i + 1]), y[i:i + 1]).backward()
        signs.append(np.sign(flat_weight_grads(net)))
    expected = np.abs(np.sum(signs, axis=0)).sum()
    assert value["gradsign"] == pytest.approx(expected, abs=2)  # at most a sign flipped by rounding at 0


# -- ZiCo -----------------------------------------------------------------------------------------------------
def test_zico_matches_a_direct_mean_over_std_computation() -> None:
    net = small_convnet()
    torch.manual_seed(2)
    xs, ys = [torch.randn(8, 2, 5, 5) for _ in range(2)], [torch.randint(0, 3, (8,)) for _ in range(2)]
    value = PROXIES.get("zico")().compute(net, image_batch(xs, ys))
    layers = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    grads = []
    for x, y in zip(xs, ys):
        net.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        grads.append([m.weight.grad.numpy().ravel().astype(float) for m in layers])
    expected = 0.0
    for g1, g2 in zip(*grads):  # two batches: mean |g| = (|g1| + |g2|) / 2, std g = |g1 - g2| / 2
        mean, std = (np.abs(g1) + np.abs(g2)) / 2, np.abs(g1 - g2) / 2
        expected += np.log(np.sum(mean[std > 0] / std[std > 0]))
    assert value["zico"] == pytest.approx(expected, rel=1e-6)


def test_zico_needs_two_batches() -> None:
    with pytest.raises(ValueError, match="2 batches"):
        PROXIES.get("zico")().compute(small_convnet(), image_batch([torch.randn(4, 2, 5, 5)], [torch.zeros(4).long()]))


# -- graph networks -------------------------------------------------------------------------------------------
class NodeMLP(GraphNetwork):
    """A graph network that ignores the edges: each node's logits are an MLP of its features."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.mlp = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))

    def forward_graph(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


@pytest.mark.parametrize("proxy", ["naswot", "gradsign", "zico"])
def test_a_graph_network_scores_its_training_nodes_as_examples(proxy: str) -> None:
    """An edge-blind graph network scores as its MLP does on the training nodes' features (ZiCo: the two halves
    of the training nodes as its two batches)."""
    torch.manual_seed(4)
    features, labels = torch.randn(12, 4), torch.randint(0, 3, (12,))
    ids = torch.tensor([0, 2, 3, 5, 7, 8, 10, 11])
    net = bind_graph(NodeMLP(), features, torch.zeros(2, 0, dtype=torch.long))
    graph_value = PROXIES.get(proxy)().compute(net, ProxyBatch([ids, ids], [labels[ids]] * 2, 3, None))
    halves = [ids[:4], ids[4:]] if proxy == "zico" else [ids]
    image_value = PROXIES.get(proxy)().compute(NodeMLP().mlp, image_batch([features[h] for h in halves],
                                                                          [labels[h] for h in halves]))
    assert graph_value[proxy] == pytest.approx(image_value[proxy], rel=1e-6)


# -- through the evaluator ------------------------------------------------------------------------------------
@pytest.mark.parametrize("proxy", ["naswot", "gradsign", "zico"])
def test_proxy_scores_a_tiny_nb201_arch_finitely_and_deterministically(proxy: str) -> None:
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)
    generator = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.randn(16, 3, 8, 8, generator=generator), torch.randint(0, 10, (16,), generator=generator))
    arch = space.sample(np.random.default_rng(0))
    values = [ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy=proxy, batch_size=8), train=train)(arch)
              for _ in range(2)]
    assert math.isfinite(values[0])
    assert values[0] == values[1]


def test_naswot_reads_stacked_node_features_per_node() -> None:
    """A ReLU over K stacked node-feature maps (K x nodes x F, as PyG's ARMAConv applies its activation) codes each
    node by its K x F units: the same score as the node-major layout."""

    class Stacked(GraphNetwork):
        def __init__(self, node_major: bool) -> None:
            super().__init__()
            torch.manual_seed(5)
            self.lin, self.act, self.node_major = nn.Linear(4, 6), nn.ReLU(), node_major

        def forward_graph(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            h = self.lin(x).view(len(x), 2, 3)  # nodes x K x F
            if self.node_major:
                return self.act(h).flatten(1)
            return self.act(h.movedim(1, 0)).movedim(0, 1).flatten(1)  # the ReLU sees K x nodes x F

    torch.manual_seed(6)
    features, labels = torch.randn(10, 4), torch.randint(0, 3, (10,))
    ids = torch.tensor([1, 2, 4, 6, 9])
    values = [PROXIES.get("naswot")().compute(bind_graph(Stacked(node_major), features, torch.zeros(2, 0, dtype=torch.long)),
                                              ProxyBatch([ids], [labels[ids]], 3, None))["naswot"]
              for node_major in (True, False)]
    assert values[0] == pytest.approx(values[1], rel=1e-9)


def test_the_one_product_hamming_kernel_equals_the_papers_two_products() -> None:
    """K = c c^T + (1 - c)(1 - c)^T, computed as 2 c c^T - s_i - s_j + units: equal, bit for bit."""
    from nasframe.evaluation.zero_cost.naswot import hamming_kernel

    generator = torch.Generator().manual_seed(0)
    for shape in [(7, 33), (16, 1000), (5, 1)]:
        codes = torch.rand(shape, generator=generator) > 0.3
        c = codes.double()
        assert torch.equal(hamming_kernel(codes), c @ c.T + (1 - c) @ (1 - c).T), shape
