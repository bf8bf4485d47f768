"""The gradient zero-cost proxies grad_norm, snip, synflow and jacob_cov: each pinned to its definition on a
one- or two-layer network (hand-derived values or an independent computation), and each run through the
ZeroCostEvaluator on the tiny NAS-Bench-201 space (finite, deterministic, the paper's settings)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasframe.core.space import DataSpec
from nasframe.data.base import TensorSplit
from nasframe.evaluation.zero_cost.base import PROXIES, ProxyBatch
from nasframe.evaluation.zero_cost.evaluator import ZeroCostConfig, ZeroCostEvaluator
from nasframe.evaluation.zero_cost.grad_norm import GradNorm
from nasframe.evaluation.zero_cost.jacov import K, JacobCov, jacob_cov_score
from nasframe.evaluation.zero_cost.snip import Snip
from nasframe.evaluation.zero_cost.synflow import Synflow
from search_spaces.nb201 import NB201Space

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"


def image_batch(n: int = 6, shape: tuple[int, ...] = (2, 4, 4), classes: int = 3, seed: int = 0) -> ProxyBatch:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    return ProxyBatch([x], [y], classes, shape)


def conv_net(seed: int = 0, bias: bool = True) -> nn.Module:
    """Conv (2 -> 3 channels, 4x4 images) -> ReLU -> Linear (48 -> 3)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=bias), nn.ReLU(), nn.Flatten(), nn.Linear(48, 3, bias=bias))


def linear_gradient(weight: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """dL/dW of the mean cross-entropy of logits ``x W^T`` by hand: ``(softmax - onehot)^T x / N``."""
    probs = torch.softmax(x @ weight.T, dim=1)
    return (probs - F.one_hot(y, weight.shape[0]).float()).T @ x / len(x)


# -- grad_norm and snip -----------------------------------------------------------------------------------


def test_grad_norm_and_snip_of_one_linear_layer_match_the_hand_gradient():
    torch.manual_seed(0)
    layer = nn.Linear(5, 3, bias=False)
    batch = image_batch(8, (5,))
    grad = linear_gradient(layer.weight.detach(), batch.inputs[0], batch.labels[0])
    assert GradNorm().compute(layer, batch)["grad_norm"] == pytest.approx(grad.norm().item(), rel=1e-5)
    expected_snip = (layer.weight.detach() * grad).abs().sum().item()
    assert Snip().compute(layer, batch)["snip"] == pytest.approx(expected_snip, rel=1e-5)


def test_grad_norm_and_snip_sum_over_weight_layers_without_biases():
    net, batch = conv_net(), image_batch()
    weights = [net[0].weight, net[3].weight]
    grads = torch.autograd.grad(F.cross_entropy(net(batch.inputs[0]), batch.labels[0]), weights)
    expected_norm = sum(g.norm().item() for g in grads)
    expected_snip = sum((w * g).abs().sum().item() for w, g in zip(weights, grads))
    assert GradNorm().compute(net, batch)["grad_norm"] == pytest.approx(expected_norm, rel=1e-5)
    assert Snip().compute(net, batch)["snip"] == pytest.approx(expected_snip, rel=1e-5)


def test_grad_norm_scores_the_linear_layers_of_a_pyg_graph_network():
    pytest.importorskip("torch_geometric", reason="needs the torch-geometric package")
    from torch_geometric.nn import GCNConv

    from nasframe.core.graph import GraphNetwork, bind_graph

    class GCN(GraphNetwork):
        def __init__(self) -> None:
            super().__init__()
            self.conv = GCNConv(4, 3)

        def forward_graph(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            return self.conv(x, edge_index)

    torch.manual_seed(0)
    x, edge_index = torch.randn(10, 4), torch.randint(0, 10, (2, 30))
    net = bind_graph(GCN(), x, edge_index)
    nodes, labels = torch.arange(0, 10, 2), torch.randint(0, 3, (5,))
    weight = net.conv.lin.weight
    (grad,) = torch.autograd.grad(F.cross_entropy(net(nodes), labels), [weight])
    score = GradNorm().compute(net, ProxyBatch([nodes], [labels], 3, None))["grad_norm"]
    assert score == pytest.approx(grad.norm().item(), rel=1e-5)


# -- synflow ------------------------------------------------------------------------------------------------


def test_synflow_of_a_linear_chain_is_depth_times_the_product_of_absolute_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5, bias=False), nn.ReLU(), nn.Linear(5, 3, bias=False))
    w1, w2 = (net[0].weight.detach().double().abs(), net[2].weight.detach().double().abs())
    flow = (torch.ones(3, dtype=torch.float64) @ w2 @ w1 @ torch.ones(4, dtype=torch.float64)).item()
    # every layer of a positive bias-free ReLU chain carries the whole flow R (the paper's conservation): 2 * R
    value = Synflow().compute(net, ProxyBatch([], [], 3, (4,)))["synflow"]
    assert value == pytest.approx(math.log(2 * flow), rel=1e-12)


def test_synflow_of_a_conv_net_conserves_the_flow_in_every_layer():
    net = conv_net(bias=False)
    with torch.no_grad():
        positive = conv_net(bias=False).double()
        for p in positive.parameters():
            p.abs_()
        flow = positive(torch.ones(1, 2, 4, 4, dtype=torch.float64)).sum().item()
    value = Synflow().compute(net, ProxyBatch([], [], 3, (2, 4, 4)))["synflow"]
    assert value == pytest.approx(math.log(2 * flow), rel=1e-12)


def test_synflow_is_data_independent():
    values = {Synflow().compute(conv_net(), batch)["synflow"]
              for batch in (image_batch(seed=1), image_batch(seed=2), ProxyBatch([], [], 3, (2, 4, 4)))}
    assert len(values) == 1


def test_synflow_is_computed_in_float64_past_float32_overflow_and_is_minus_inf_when_zero():
    depth = 40
    net = nn.Sequential(*[nn.Linear(8, 8, bias=False) for _ in range(depth)])
    nn.init.constant_(net[0].weight, -10.0)  # the sign is dropped
    for layer in net[1:]:
        nn.init.constant_(layer.weight, 10.0)
    value = Synflow().compute(net, ProxyBatch([], [], 8, (8,)))["synflow"]  # R = 8 * 80^40 ~ 1e77
    assert value == pytest.approx(math.log(depth) + math.log(8) + depth * math.log(80), rel=1e-12)
    dead = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 2, bias=False))
    nn.init.zeros_(dead[1].weight)
    assert Synflow().compute(dead, ProxyBatch([], [], 2, (4,)))["synflow"] == -math.inf


# -- jacob_cov ----------------------------------------------------------------------------------------------


def test_jacob_cov_score_by_hand_for_identical_and_uncorrelated_rows():
    n = 3
    # identical rows: C is all ones, eigenvalues n and 0 (n - 1 times)
    identical = torch.tensor([[1.0, 2.0, 4.0]]).repeat(n, 1)
    expected = -(math.log(n + K) + 1 / (n + K) + (n - 1) * (math.log(K) + 1 / K))
    assert jacob_cov_score(identical) == pytest.approx(expected, rel=1e-9)
    # zero-mean orthogonal rows: C is the identity
    orthogonal = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]])
    assert jacob_cov_score(orthogonal) == pytest.approx(-n * (math.log(1 + K) + 1 / (1 + K)), rel=1e-9)
    assert math.isnan(jacob_cov_score(torch.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])))  # a constant row


def test_jacob_cov_matches_per_example_jacobians_and_numpy():
    net, batch = conv_net(), image_batch()
    rows = []
    for x in batch.inputs[0]:
        example = x.unsqueeze(0).requires_grad_(True)
        (grad,) = torch.autograd.grad(net(example).sum(), example)
        rows.append(grad.flatten().double().numpy())
    eigenvalues = np.linalg.eigvals(np.corrcoef(np.stack(rows))).real
    expected = -np.sum(np.log(eigenvalues + 1e-5) + 1.0 / (eigenvalues + 1e-5))
    assert JacobCov().compute(net, batch)["jacov"] == pytest.approx(expected, rel=1e-6)


def test_jacob_cov_of_a_network_that_ignores_its_input_is_nan_not_an_error():
    """NB201's all-none cell: the logits do not depend on the image (J = 0), so every row has zero variance."""
    space = NB201Space(DataSpec(2, (4, 4), 3), channels=4, cells_per_stage=1)
    net = space.build_subnet(space.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    assert math.isnan(JacobCov().compute(net, image_batch())["jacov"])


    class Constant(nn.Module):  # nothing in its output requires a gradient
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(len(x), 3)

    assert math.isnan(JacobCov().compute(Constant(), image_batch())["jacov"])


# -- through the evaluator --------------------------------------------------------------------------------------


@pytest.mark.parametrize("proxy", ["grad_norm", "snip", "synflow", "jacov"])
def test_proxy_through_the_evaluator_is_finite_deterministic_and_uses_the_paper_settings(proxy):
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)
    gen = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.randn(64, 3, 8, 8, generator=gen), torch.randint(0, 10, (64,), generator=gen))
    arch = space.parse(ARCH)

    def score() -> tuple[float, ZeroCostEvaluator]:
        evaluator = ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy=proxy), train=train)
        return evaluator(arch), evaluator

    first, evaluator = score()
    assert math.isfinite(first)
    assert score()[0] == first
    assert evaluator.settings[proxy] == PROXIES.get(proxy).settings
