"""snip: the summed connection sensitivity (SNIP saliency) of every weight.

From "SNIP: Single-shot Network Pruning based on Connection Sensitivity" (Lee et al., ICLR 2019), which scores
each weight by how much the loss changes when its connection is removed, ``|dL/dc * c|`` at the connection
gate ``c = 1``, i.e. ``|theta * dL/dtheta|``. "Zero-Cost Proxies for Lightweight NAS" (Abdelfattah et al., ICLR
2021) sums it over the network as a NAS proxy: for one batch ``(x, y)`` and the cross-entropy loss ``L`` (mean
over the batch),

    snip = sum over the weights theta of convolution and linear layers of |theta * dL/dtheta|

(biases excluded). The defaults are those of the proxy paper's code (SamsungLabs/zero-cost-nas,
``foresight/pruners/measures/snip.py`` and ``nasbench2_pred.py``): one batch of 64 real training images,
PyTorch's default initialisation, BatchNorm in training mode (batch statistics). Graph networks are scored the
same way, the loss on the labelled nodes of the bound graph.
"""

from __future__ import annotations

from torch import nn

from nasframe.evaluation.zero_cost.base import (
    PROXIES, Proxy, ProxyBatch, ProxySettings, cross_entropy_backward, weight_layers,
)


@PROXIES.register("snip")
class Snip(Proxy):
    name = "snip"
    components = ("snip",)
    paper = "SNIP: Single-shot Network Pruning based on Connection Sensitivity"
    settings = ProxySettings(init="default", bn="train", input="real", batch_size=64)

    def compute(self, net: nn.Module, batch: ProxyBatch) -> dict[str, float]:
        cross_entropy_backward(net, batch.inputs[0], batch.labels[0])
        saliencies = [(layer.weight * layer.weight.grad).abs().sum().item()
                      for layer in weight_layers(net) if layer.weight.grad is not None]
        return {"snip": float(sum(saliencies))}
