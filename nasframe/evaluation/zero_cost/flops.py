"""FLOPs: the multiply-accumulate operations of one forward pass of one example.

The second trivial baseline (Kendall tau 0.623 on NAS-Bench-201 CIFAR-10 in the re-run of "Training-free
Neural Architecture Search through Variance of Knowledge of Deep Network Weights", CVPR 2025), and AZ-NAS's
complexity component. Counted by :class:`torch.utils.flop_counter.FlopCounterMode`, which counts the
matrix products and convolutions of the aten graph (``2 * MACs`` each: reported here as MACs, the convention
of NAS-Bench-201's ``flops`` column); element-wise ops, pooling and BatchNorm are not counted. An image network
runs on the meta device on one example (no compute); a graph network runs once on its bound graph (its cost
depends on the graph's size).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasframe.core.graph import bound_graph
from nasframe.evaluation.zero_cost.base import PROXIES, Proxy, ProxyBatch, ProxySettings


def count_macs(net: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of ``net(*inputs)`` (matrix products and convolutions)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(*inputs)
    return counter.get_total_flops() // 2


@PROXIES.register("flops")
class Flops(Proxy):
    name = "flops"
    components = ("flops",)
    paper = "baseline: multiply-accumulates of one forward pass"
    settings = ProxySettings(input="none")
    structural = True

    def compute(self, net: nn.Module, batch: ProxyBatch) -> dict[str, float]:
        net.eval()
        if batch.is_graph:
            graph = bound_graph(net)
            if graph is None:
                raise ValueError("flops of a graph network need its graph bound (nasframe.core.graph.bind_graph)")
            return {"flops": float(count_macs(net, *graph))}
        device = next(net.parameters()).device
        return {"flops": float(count_macs(net, torch.zeros(1, *batch.input_shape, device=device)))}
