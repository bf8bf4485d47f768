"""Graph data for node classification: one graph with split masks, and its splits as rows of node ids.

nasframe's trainer and evaluator read a data set as rows (inputs and labels). A node-classification graph
becomes three :class:`~nasframe.data.base.TensorSplit` s whose inputs are node ids and whose labels are those
nodes' classes (:func:`node_splits`); the graph itself travels with them in ``DatasetSplits.graph`` and is
bound to the network (:func:`nasframe.core.graph.bind_graph`), which then runs full-graph forwards and returns
the rows of the asked nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nasframe.core.space import DataSpec
from nasframe.data.base import DatasetSplits, TensorSplit


@dataclass
class GraphData:
    """One graph for node classification: ``x`` (N, F) float features, ``edge_index`` (2, E) int64,
    ``y`` (N,) int64 labels, and boolean masks (N,) of the train / validation / test nodes."""

    x: torch.Tensor
    edge_index: torch.Tensor
    y: torch.Tensor
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    num_features: int
    num_classes: int
    name: str = "graph"

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        for field_name in ("y", "train_mask", "val_mask", "test_mask"):
            if getattr(self, field_name).shape[0] != n:
                raise ValueError(f"{self.name}: {field_name} has {getattr(self, field_name).shape[0]} rows for {n} nodes")
        if self.edge_index.dim() != 2 or self.edge_index.shape[0] != 2:
            raise ValueError(f"{self.name}: edge_index must have shape (2, E), got {tuple(self.edge_index.shape)}")

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def spec(self) -> DataSpec:
        """What a space needs: ``in_channels`` = feature size, ``num_classes`` (the image size is unused)."""
        return DataSpec(in_channels=self.num_features, input_size=(1, 1), num_classes=self.num_classes)

    def to(self, device: torch.device | str) -> GraphData:
        moved = {k: getattr(self, k).to(device) for k in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask")}
        return GraphData(**moved, num_features=self.num_features, num_classes=self.num_classes, name=self.name)

    def summary(self) -> str:
        return (
            f"{self.name}: {self.num_nodes} nodes, {self.edge_index.shape[1]} edges, {self.num_features} features, "
            f"{self.num_classes} classes; train {int(self.train_mask.sum())}, valid {int(self.val_mask.sum())}, "
            f"test {int(self.test_mask.sum())}"
        )



def node_splits(graph: GraphData) -> DatasetSplits:
    """The train / valid / test splits of ``graph`` as node ids (in increasing order) and their labels; the
    graph rides along as ``DatasetSplits.graph``."""

    def split(mask: torch.Tensor) -> TensorSplit:
        ids = mask.nonzero().flatten()
        return TensorSplit(ids, graph.y[ids])

    return DatasetSplits(
        train=split(graph.train_mask), valid=split(graph.val_mask), test=split(graph.test_mask),
        spec=graph.spec, name=graph.name, graph=graph,
    )
