"""synflow: the synaptic flow of the network with every parameter made positive, on an all-ones input.

From "Pruning neural networks without any data by iteratively conserving synaptic flow" (Tanaka et al., NeurIPS
2020), used as a NAS proxy by "Zero-Cost Proxies for Lightweight NAS" (Abdelfattah et al., ICLR 2021). Every
parameter ``theta`` is replaced by ``|theta|`` and one all-ones example ``1`` (shape ``(1, *input_shape)``) goes
through the network; with ``R = sum of the outputs f(1)``,

    synflow = sum over the weights theta of convolution and linear layers of |theta * dR/dtheta|

(biases excluded; for a ReLU network with positive parameters every term is already non-negative: for a linear
chain ``W_L ... W_1`` it is ``L * 1^T |W_L| ... |W_1| 1``). The score needs no data and no labels.

The value of a deep network overflows float32 (1e32 to 1e61 on NAS-Bench-201), so the network is cast to
float64 (``net.double()``) and **the proxy's value is the natural log of synflow**, which preserves its order
(a synflow of 0 gives ``-inf``). Only parameters are made positive (the paper's code also takes the absolute
value of BatchNorm's running statistics; at their initial values, mean 0 and variance 1, that changes nothing).

The defaults are the proxy paper's (SamsungLabs/zero-cost-nas, ``foresight/pruners/measures/synflow.py``):
PyTorch's default initialisation, and BatchNorm switched off there -- here ``eval`` at the initial running
statistics, where BatchNorm is its (positive) affine map, up to its ``eps``; the input is the proxy's own.

Image networks only (``supports_graphs = False``). Synflow's input is defined for an example of a fixed shape
and carries no data; a graph network's input is the graph itself. Running the network on all-ones node features
of the bound graph computes something, but it depends on the graph's edges (data), no paper defines it, and
for attention or normalised aggregation the positive network no longer computes the path sum the paper's
definition rests on.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasframe.evaluation.zero_cost.base import PROXIES, Proxy, ProxyBatch, ProxySettings, weight_layers


@PROXIES.register("synflow")
class Synflow(Proxy):
    name = "synflow"
    components = ("synflow",)
    paper = "Pruning neural networks without any data by iteratively conserving synaptic flow"
    settings = ProxySettings(init="default", bn="eval", input="none")
    supports_graphs = False

    def compute(self, net: nn.Module, batch: ProxyBatch) -> dict[str, float]:
        if batch.input_shape is None:
            raise ValueError("synflow is defined for image networks, not graph networks")
        net.double()
        with torch.no_grad():
            for param in net.parameters():
                param.abs_()
        net.zero_grad(set_to_none=True)
        device = next(net.parameters()).device
        ones = torch.ones(1, *batch.input_shape, dtype=torch.float64, device=device)
        net(ones).sum().backward()
        score = sum((layer.weight * layer.weight.grad).abs().sum().item()
                    for layer in weight_layers(net) if layer.weight.grad is not None)
        return {"synflow": math.log(score) if score > 0 else -math.inf}
