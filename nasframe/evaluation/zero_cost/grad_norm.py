"""grad_norm: the summed norms of the loss gradient of every weight layer.

Defined as a NAS proxy in "Zero-Cost Proxies for Lightweight NAS" (Abdelfattah et al., ICLR 2021): for one
batch ``(x, y)`` and the cross-entropy loss ``L`` (mean over the batch),

    grad_norm = sum over convolution and linear layers l of ||dL/dW_l||_2

(``W_l`` the layer's weight, its bias excluded; the Euclidean norm of the whole weight tensor). The paper's
code (SamsungLabs/zero-cost-nas, ``foresight/pruners/measures/grad_norm.py``) scores one batch of 64 real
training images of the network with PyTorch's default initialisation and BatchNorm in training mode (batch
statistics): the defaults here. Graph networks are scored the same way, the loss on the labelled nodes of the
bound graph.
"""

from __future__ import annotations

from torch import nn

from nasframe.evaluation.zero_cost.base import (
    PROXIES, Proxy, ProxyBatch, ProxySettings, cross_entropy_backward, weight_layers,
)


@PROXIES.register("grad_norm")
class GradNorm(Proxy):
    name = "grad_norm"
    components = ("grad_norm",)
    paper = "Zero-Cost Proxies for Lightweight NAS"
    settings = ProxySettings(init="default", bn="train", input="real", batch_size=64)

    def compute(self, net: nn.Module, batch: ProxyBatch) -> dict[str, float]:
        cross_entropy_backward(net, batch.inputs[0], batch.labels[0])
        norms = [layer.weight.grad.norm().item() for layer in weight_layers(net) if layer.weight.grad is not None]
        return {"grad_norm": float(sum(norms))}
