"""Graph networks for node classification, and how nasframe's example-wise pipeline feeds them full graphs.

A graph network computes logits for every node of a graph: ``model(x, edge_index)`` with node features ``x``
(num_nodes, num_features) and PyG's ``edge_index`` (2, num_edges) returns (num_nodes, num_classes). That is
the signature of every GNN in ``search_spaces`` and of their exported modules.

nasframe's trainer, evaluator and selectors see a data set as rows: inputs and labels, drawn in batches. For
node classification a row is a node: its input is the node's id and its label the node's class (the splits of
:func:`nasframe.data.graph.node_splits`). :func:`bind_graph` hands a network the graph, after which
``model(node_ids)`` runs the network on the whole graph -- full batch, every layer sees every node, as GNNs
are trained on the Planetoid graphs -- and returns the logits of ``node_ids``. So a training step on a batch
of node ids is one full-graph forward with the loss on those nodes, BatchNorm recalibration is a full-graph
forward in training mode, and accuracy on a split is measured on its nodes; none of those components knows
about graphs.

The bound graph is a plain attribute, not a buffer: it is not in the state dict, not in checkpoints, not in a
``torch.export`` program (which is traced with an explicit ``(x, edge_index)``). Bind tensors that are
already on the model's device.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_BOUND = "_nasframe_bound_graph"


class GraphNetwork(nn.Module):
    """Base of graph networks: subclasses implement :meth:`forward_graph`; ``forward`` also serves a bound
    graph's node ids (see the module docstring)."""

    def forward_graph(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Logits (num_nodes, num_classes) of every node."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor | None = None) -> torch.Tensor:
        if edge_index is not None:
            return self.forward_graph(x, edge_index)
        graph = self.__dict__.get(_BOUND)
        if graph is None:
            raise ValueError(
                f"{type(self).__name__} is a graph network: call it as model(x, edge_index), or bind a graph "
                "first (nasframe.core.graph.bind_graph) and call it with node ids"
            )
        if x.dtype not in (torch.int64, torch.int32) or x.dim() != 1:
            raise ValueError(f"with a bound graph, the input is a 1-D tensor of node ids, got {x.dtype} {tuple(x.shape)}")
        return self.forward_graph(*graph)[x]


def is_graph_network(model: Any) -> bool:
    return isinstance(model, GraphNetwork)


def bind_graph(model: nn.Module, x: torch.Tensor, edge_index: torch.Tensor) -> nn.Module:
    """Give ``model`` (a :class:`GraphNetwork`, or a container whose graph networks all get it, such as a few-shot
    supernet) the graph ``(x, edge_index)``; returns ``model``."""
    networks = [m for m in model.modules() if isinstance(m, GraphNetwork)]
    if not networks:
        raise TypeError(f"{type(model).__name__} is not a graph network: it cannot take a graph")
    for network in networks:
        network.__dict__[_BOUND] = (x, edge_index)
    return model


def bound_graph(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The graph bound to ``model`` (or to its first graph network), if any."""
    for module in model.modules():
        graph = module.__dict__.get(_BOUND)
        if graph is not None:
            return graph
    return None
