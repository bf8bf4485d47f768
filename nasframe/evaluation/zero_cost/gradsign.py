"""GradSign: how much the examples of a batch agree on the direction of each weight's gradient.

From "GradSign: Model Performance Inference with Theoretical Insights" (Zhang & Jia, ICLR 2022). With
``g_i = d loss(f(x_i), y_i) / d theta`` the gradient of example i's cross-entropy loss alone, the score is

    GradSign = sum over weight elements k of | sum over examples i of sign(g_i[k]) |

(a zero gradient has sign 0; elements whose gradient is NaN are left out, as the official code's ``nansum``
does). Weights where the examples' gradients point the same way, i.e. whose sample-wise optima lie close
together, count more; the paper derives this from a bound on the training and generalisation loss.

Paper defaults (its code, cmu-catalyst/GradSign, ``grad_conflict`` measure): a batch of 128 real training
images, PyTorch's default initialisation, the weights of convolutions and linear layers only
(:func:`~.base.weight_layers`), and BatchNorm as the network comes (train mode). Each example is its own
forward pass (a batch of one), so in train mode BatchNorm normalises each example with its own statistics,
never with its batch-mates'. Here the per-example gradients come from ``torch.func`` (``vmap`` of ``grad`` of a
``functional_call`` on one example), a chunk of examples at a time, which gives the official loop's values.

Graph networks: every training node is an example; its gradient is that of its own loss after a full-graph
forward (a loop over nodes: one forward and backward of the whole graph per node).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from nasframe.evaluation.zero_cost.base import (PROXIES, Proxy, ProxyBatch, ProxySettings, cross_entropy_backward,
                                                weight_layers)

#: examples whose gradients are held at once (memory: this many copies of the weights)
CHUNK = 16


def scored_weights(net: nn.Module) -> dict[str, torch.Tensor]:
    """The weights GradSign scores, by their names in ``net``: those of :func:`~.base.weight_layers`."""
    layers = set(weight_layers(net))
    return {f"{name}.weight" if name else "weight": m.weight for name, m in net.named_modules() if m in layers}


def per_example_gradients(net: nn.Module, weights: dict[str, torch.Tensor], inputs: torch.Tensor,
                          labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each example's loss gradient for ``weights``, stacked on a first axis; every example is a forward pass of
    its own (a batch of one)."""

    def loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = functional_call(net, params, (x.unsqueeze(0),))
        return nn.functional.cross_entropy(logits, y.unsqueeze(0))

    params = {k: w.detach() for k, w in weights.items()}
    with torch.no_grad():  # torch.func.grad still differentiates; nothing is recorded for the outer autograd
        return vmap(grad(loss), in_dims=(None, 0, 0), randomness="different")(params, inputs, labels)


@PROXIES.register("gradsign")
class GradSign(Proxy):
    name = "gradsign"
    components = ("gradsign",)
    paper = "GradSign: Model Performance Inference with Theoretical Insights (Zhang & Jia, ICLR 2022)"
    settings = ProxySettings(init="default", bn="train", input="real", batch_size=128)
    supports_graphs = True

    def compute(self, net: nn.Module, batch: ProxyBatch) -> dict[str, float]:
        inputs, labels = batch.inputs[0], batch.labels[0]
        weights = scored_weights(net)
        sign_sums = {k: torch.zeros_like(w) for k, w in weights.items()}
        if batch.is_graph:
            for i in range(len(inputs)):
                cross_entropy_backward(net, inputs[i:i + 1], labels[i:i + 1])
                for k, w in weights.items():
                    if w.grad is not None:  # a weight the loss does not reach has gradient 0: sign 0
                        sign_sums[k] += w.grad.sign()
            net.zero_grad(set_to_none=True)
        else:
            for start in range(0, len(inputs), CHUNK):
                grads = per_example_gradients(net, weights, inputs[start:start + CHUNK], labels[start:start + CHUNK])
                for k, g in grads.items():
                    sign_sums[k] += g.sign().sum(dim=0)
        score = sum(s.abs().double().nansum() for s in sign_sums.values())
        return {"gradsign": float(score)}
