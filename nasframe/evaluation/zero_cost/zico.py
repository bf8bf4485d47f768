"""ZiCo: the inverse coefficient of variation of the weights' gradients across batches.

From "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients" (Li et al., ICLR 2023). With
``g_b = d loss(batch b) / d theta`` the cross-entropy gradient of batch b (b = 1..B), for every weight element
``mean_b |g_b|`` and ``std_b g_b`` (the population standard deviation, over the B batches); then

    ZiCo = sum over layers l of log( sum over elements k of layer l with std_k > 0 of mean_k / std_k )

over the convolutions and linear layers (:func:`~.base.weight_layers`); a layer whose sum is 0 (no element
with a non-zero standard deviation, or a weight the loss does not reach) adds nothing. Weights whose gradient is
large and consistent across batches (high mean, low variance) make training converge faster and generalise
better, the paper's theory says.

Paper defaults: 2 batches of 64 real training images on CIFAR (``maxbatch=2`` in the official code,
SLDGroup/ZiCo), BatchNorm in train mode, PyTorch's default initialisation. Mean of ``|g|`` and standard
deviation of ``g`` (not of ``|g|``) as the official ``caculate_zico`` computes them. Each ``g_b`` is the
gradient of batch b alone (gradients zeroed between batches), as the paper defines it; the official search
script does not zero them between its two batches, so its second gradient is ``g_1 + g_2``.

Graph networks: the batches the evaluator gives a graph network are all the same set of training nodes, whose
gradients would not vary; the training nodes are therefore split into B disjoint parts (in their order), and
``g_b`` is the gradient of part b's loss after a full-graph forward.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from nasframe.evaluation.zero_cost.base import (PROXIES, Proxy, ProxyBatch, ProxySettings, cross_entropy_backward,
                                                weight_layers)


def zico_score(gradients: list[list[torch.Tensor]]) -> float:
    """ZiCo of ``gradients[l][b]``, the gradient of layer l's weight on batch b (zero where it got none)."""
    score = 0.0
    for per_batch in gradients:
        g = torch.stack([t.flatten() for t in per_batch]).double()
        std = g.std(dim=0, correction=0)
        kept = std > 0
        total = float((g.abs().mean(dim=0)[kept] / std[kept]).sum())
        if total > 0:
            score += math.log(total)
    return score


@PROXIES.register("zico")
class ZiCo(Proxy):
    name = "zico"
    components = ("zico",)
    paper = "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients (Li et al., ICLR 2023)"
    settings = ProxySettings(init="default", bn="train", input="real", batch_size=64, batches=2)
    supports_graphs = True
    #: each ``g_b`` the gradient of batch b alone (the paper); False: kept adding up, as the official search script
    zero_between_batches = True

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        if not self.zero_between_batches:  # (the paper's way adds nothing: its cached values keep their key)
            described["gradients"] = "accumulated between batches (official search script)"
        return described

    def compute(self, net: nn.Module, batch: ProxyBatch) -> dict[str, float]:
        if batch.is_graph:  # one set of training nodes: B disjoint parts of it
            parts = len(batch.inputs)
            pairs = list(zip(batch.inputs[0].chunk(parts), batch.labels[0].chunk(parts)))
        else:
            pairs = list(zip(batch.inputs, batch.labels))
        if len(pairs) < 2:
            raise ValueError("ZiCo needs at least 2 batches (batches=2) to measure the gradients' variation")
        layers = weight_layers(net)
        gradients: list[list[torch.Tensor]] = [[] for _ in layers]
        net.zero_grad(set_to_none=True)
        for inputs, labels in pairs:
            cross_entropy_backward(net, inputs, labels, zero_grad=self.zero_between_batches)
            for per_batch, layer in zip(gradients, layers):
                g = layer.weight.grad
                per_batch.append(torch.zeros_like(layer.weight) if g is None else g.detach().clone())
        net.zero_grad(set_to_none=True)
        return {"zico": zico_score(gradients)}
