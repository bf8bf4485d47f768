"""NASWOT: how differently an untrained ReLU network's units switch on for different examples.

From "Neural Architecture Search without Training" (Mellor et al., ICML 2021). For a batch of N examples, every
ReLU unit gives each example a binary code bit ``c = 1`` when the unit is active (its input is positive). With
``c`` the (N, units) code matrix of one ReLU layer, the Hamming-similarity kernel is

    K_H = sum over ReLU layers of ( c c^T + (1 - c)(1 - c)^T )        (N x N)

whose entry (i, j) is the number of units on which examples i and j agree (the total number of units minus the
Hamming distance of their codes), and the score is ``log |det K_H|`` (computed with ``slogdet``, in float64).
Networks whose examples get more distinct codes (a K_H closer to diagonal) score higher.

Paper defaults (its code, BayesWatch/nas-without-training): a batch of 128 real training images, PyTorch's
default initialisation, BatchNorm in train mode (batch statistics), every ``nn.ReLU`` module hooked. The
official code counts only ReLUs that the backward pass reaches; every ReLU of the spaces here feeds the logits,
so all are counted.

Graph networks: every node is an example. The network runs once on its bound graph; each ``nn.ReLU`` output
(one row per node of the graph; a layer that stacks K node-feature maps, as PyG's ``ARMAConv`` does, K x nodes x
F, gives each node its K x F units) is restricted to the rows of the batch's nodes, the training nodes, so K_H is
N x N with N the number of training nodes (memory N^2 floats). Only ``nn.ReLU`` modules are hooked: in a space
whose activation is searched (GraphNAS: elu, tanh, ...), an arch without any ReLU has no codes, K_H = 0 and
the score is ``-inf`` (it ranks last), so NASWOT is meant for ReLU spaces such as NAS-Bench-Graph.
"""

from __future__ import annotations

import torch
from torch import nn

from nasframe.core.graph import bound_graph
from nasframe.evaluation.zero_cost.base import PROXIES, Proxy, ProxyBatch, ProxySettings


def hamming_kernel(codes: torch.Tensor) -> torch.Tensor:
    """``c c^T + (1 - c)(1 - c)^T`` of one layer's binary codes (N, units): how many units two examples agree on.

    Computed with one product: ``(1 - c)(1 - c)^T = units - s_i - s_j + c c^T`` with ``s`` the active units per
    example, so ``K = 2 c c^T - s_i - s_j + units``. Every term is an integer of at most ``2 units``: exact in
    float32 below 2^23 units, else computed in float64."""
    codes = codes.float() if codes.shape[1] < 2 ** 23 else codes.double()
    active = codes.sum(1)
    return (2 * (codes @ codes.T) - active[:, None] - active[None, :] + codes.shape[1]).double()


@PROXIES.register("naswot")
class NASWOT(Proxy):
    name = "naswot"
    components = ("naswot",)
    paper = "Neural Architecture Search without Training (Mellor et al., ICML 2021)"
    settings = ProxySettings(init="default", bn="train", input="real", batch_size=128)
    supports_graphs = True

    def compute(self, net: nn.Module, batch: ProxyBatch) -> dict[str, float]:
        inputs = batch.inputs[0]
        n = len(inputs)
        kernel = torch.zeros(n, n, dtype=torch.float64, device=inputs.device)
        graph = bound_graph(net) if batch.is_graph else None
        num_nodes = len(graph[0]) if graph is not None else None

        def add_codes(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            active = output > 0  # a ReLU's output is positive exactly where its input is
            if batch.is_graph:
                if active.shape[0] != num_nodes and active.dim() == 3 and active.shape[1] == num_nodes:
                    active = active.movedim(1, 0)  # stacked node features, K x nodes x F (PyG's ARMAConv)
                active = active[inputs]  # rows of the batch's nodes
            kernel.add_(hamming_kernel(active.reshape(n, -1)))

        handles = [m.register_forward_hook(add_codes) for m in net.modules() if isinstance(m, nn.ReLU)]
        try:
            with torch.no_grad():
                net(inputs)
        finally:
            for handle in handles:
                handle.remove()
        return {"naswot": float(torch.linalg.slogdet(kernel).logabsdet)}
