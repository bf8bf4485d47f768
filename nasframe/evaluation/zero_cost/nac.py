"""NAC: the neural-architecture-coding objective of an untrained graph network.

From "Do Not Train It: A Linear Neural Architecture Search of Graph Neural Networks" (Xu et al., ICML 2023).
NAC argues that a GNN with fixed random weights can already reach optimal outputs (GNNs being nearly
linear and random weights nearly orthogonal), so a search need not train weights: it casts NAS as sparse
coding. Each searched layer mixes every candidate op, ``h_l = sum_k w_{l,k} o_k(h_{l-1}; W_k)``, with
coefficients ``w_l = alpha_l / ||alpha_l||_2``; the weights ``W`` keep their initial values and only the
code ``alpha`` is optimised, on

    L(alpha) = CE(f(X, A; W_0, alpha)[V], y_V) + lambda * sum_l ||w_l||_1,

the cross-entropy of the network's logits on labelled nodes ``V`` plus a sparsity penalty (the authors'
code: Adam on ``alpha``, dropout off, layer-default initialisation, no BatchNorm; the arch is each layer's
``argmax w_l``).

**What a per-arch score can be.** NAC is a search over a mixture supernet, not a score of one network, and
this framework hands a proxy one arch's standalone network. A single arch is one code: one op per layer,
whose normalised coefficient is 1. Restricted to it, NAC's objective has nothing left to optimise (the
weights are frozen by definition and ``w_l = alpha_l / |alpha_l|`` is fixed), and its sparsity term is the
same ``lambda * (number of searched layers)`` for every arch of a space. So the NAC score of an arch is its
objective at its own code, the penalty dropped:

    nac = -CE(f(X, A; W_0)[V], y_V),

higher is better: the mean cross-entropy of the untrained network's logits on the labelled nodes, negated.

**Differences from the paper's search** (stated, not hidden): (1) archs are scored one at a time, so NAC's
gradient-based exploration of mixtures, which is where its search signal comes from, is absent; only the
objective it descends is kept. (2) The labelled nodes are the evaluator's real batch, the training split
(full graph, as GNNs are trained); the authors optimise the code on the validation nodes. (3) Our spaces'
networks carry BatchNorm (NAC's search networks have none): it normalises with the full graph's statistics
(``bn="train"``, what training full-batch does); dropout is off (the authors' search runs in eval mode).

NAC is defined for graph networks only (its argument rests on message passing): ``supports_images`` is
False, and :meth:`NAC.compute` refuses image batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasframe.core.graph import bound_graph
from nasframe.evaluation.zero_cost.base import PROXIES, Proxy, ProxyBatch, ProxySettings
from nasframe.evaluation.zero_cost.prepare import set_batchnorm_mode


@PROXIES.register("nac")
class NAC(Proxy):
    name = "nac"
    components = ("nac",)
    paper = "Do Not Train It: A Linear Neural Architecture Search of Graph Neural Networks (Xu et al., ICML 2023)"
    settings = ProxySettings(init="default", bn="train", input="real")
    supports_graphs = True
    supports_images = False

    def compute(self, net: nn.Module, batch: ProxyBatch) -> dict[str, float]:
        if not batch.is_graph:
            raise ValueError("NAC is defined for graph networks (message passing), not for image networks")
        if bound_graph(net) is None:
            raise ValueError("NAC needs the graph bound to the network (nasframe.core.graph.bind_graph)")
        nodes, labels = batch.inputs[0], batch.labels[0]
        if net.training:  # BatchNorm on batch statistics (bn=train): keep them with dropout switched off
            set_batchnorm_mode(net, "train", None)  # (no running statistics: batch statistics in eval mode too)
        net.eval()
        with torch.no_grad():
            loss = F.cross_entropy(net(nodes), labels)
        return {"nac": -float(loss)}
