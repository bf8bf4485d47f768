"""A micro-level GNN search space in the style of GraphNAS and Auto-GNN.

From "Graph Neural Architecture Search" (Gao et al., IJCAI 2020; GraphNAS) and "Auto-GNN: Neural Architecture
Search of Graph Neural Networks" (Zhou et al.). A network is a stack of ``layers`` message-passing layers
(default 2, as both papers use on Cora); every layer ``i`` (1-based) chooses

* ``layer{i}_agg``: the layer type, one real ``torch_geometric.nn`` layer: ``gcn`` (GCNConv), ``gat`` (GATConv,
  GAT's attention), ``sage`` (SAGEConv, mean), ``gin`` (GINConv over Linear -> ReLU -> Linear), ``graph``
  (GraphConv), ``arma`` (ARMAConv, one stack of one layer), ``cheb`` (ChebConv, K=2). GraphNAS searches an
  attention function and an aggregator separately; here one choice names a layer that fixes both, as
  NAS-Bench-Graph does with the same PyG layers;
* ``layer{i}_act``: ``relu``, ``elu``, ``tanh``, ``leaky_relu`` (slope 0.01), ``sigmoid``, ``identity``;
* ``layer{i}_heads``: 1, 2, 4, 8 parallel heads. ``gat`` uses GATConv's own heads; every other layer type
  runs that many independent copies of the layer (each with its own weights: the multi-head scheme GraphNAS
  applies to every attention type, "const" attention included). Hidden layers concatenate their heads (output
  width ``hidden * heads``, as GraphNAS and GAT do); the last layer averages them;
* ``layer{i}_hidden``: 16, 32, 64, 128 features per head; hidden layers only (the last layer's heads give
  ``num_classes`` logits each).

The last layer has no activation choice: its output is the logits (GraphNAS's code also applies the searched
activation to the output layer; this space does not squash logits). Every layer's input goes through dropout
(``dropout``, default 0.6, GraphNAS's and GAT's Cora value; ``gat`` also drops attention coefficients at that
rate). No BatchNorm, as in both papers: the evaluator has no statistics to recalibrate. The default space has
``(7 * 6 * 4 * 4) * (7 * 4) = 18,816`` archs. Arch strings are the JSON form of the choices.

**Weight sharing** follows Auto-GNN's homogeneity rule (constrained parameter sharing): two archs share a
layer's weights only when that layer has the same type and shape. The supernet holds, at each layer position,
one module per key ``"{agg}_h{heads}_{in_dim}x{out_dim}"`` (``out_dim``: features per head; e.g.
``"gat_h4_1433x64"``), under ``layers.<i-1>.conv.candidates.<key>``. ``in_dim`` is the node features for
layer 1 and ``hidden * heads`` of the previous layer otherwise, so (hidden 32, heads 2) and (hidden 64, heads
1) feed one next-layer module, while any difference in type, heads or width selects another. Every key is
created eagerly (:meth:`GraphNASSpace.candidate_keys`; 308 modules for the default 2-layer space), so the
optimizer sees every parameter from the start; unused ones get no gradient and are never stepped. With many
input features the first layer dominates: on Cora (1,433 features) the default supernet holds about 60M
parameters, while any one subnet holds at most 3M.

Networks are called as ``model(x, edge_index)`` (:class:`~nasframe.core.graph.GraphNetwork`). The supernet
follows gnn_bench's protocol: ``set_arch(arch)`` routes every choice, then selects each layer's module by its
key; :func:`nasframe.export.extract` loads the active path strictly into :meth:`GraphNASSpace.build_subnet`'s
plain torch / PyG network, which computes the same function. Single-path only (no DARTS mixture).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from nasframe.core.choice import Choice
from nasframe.core.graph import GraphNetwork
from nasframe.core.modules import ChoiceModule, OpChoice, Supernet
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError, InvalidArchError
from search_spaces.layers import import_pyg_nn

AGGREGATORS: tuple[str, ...] = ("gcn", "gat", "sage", "gin", "graph", "arma", "cheb")
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU, "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}
SETTINGS = ("heads", "hidden")  # the choices with no weights of their own: they pick the layer's key


def choice_name(layer: int, what: str) -> str:
    """Choice name of ``what`` (agg, act, heads, hidden) at 1-based ``layer``: ``layer1_agg``."""
    return f"layer{layer}_{what}"


def conv_key(agg: str, heads: int, in_dim: int, out_dim: int) -> str:
    """The sharing key of one layer's module: ``gat_h4_1433x64``."""
    return f"{agg}_h{heads}_{in_dim}x{out_dim}"


@dataclass(frozen=True)
class LayerPlan:
    """One layer of an arch: type, activation (None on the last layer), heads, widths, and its key."""

    agg: str
    act: Optional[str]
    heads: int
    in_dim: int
    out_dim: int  # per head
    concat: bool  # hidden layers concatenate their heads, the last layer averages them

    @property
    def key(self) -> str:
        return conv_key(self.agg, self.heads, self.in_dim, self.out_dim)


def plan_layers(arch: Mapping[str, str], layers: int, num_features: int, num_classes: int) -> tuple[LayerPlan, ...]:
    """The layers of ``arch`` (a valid arch of a ``layers``-layer space)."""
    plan, in_dim = [], num_features
    for i in range(1, layers + 1):
        last = i == layers
        heads = int(arch[choice_name(i, "heads")])
        out_dim = num_classes if last else int(arch[choice_name(i, "hidden")])
        act = None if last else arch[choice_name(i, "act")]
        plan.append(LayerPlan(arch[choice_name(i, "agg")], act, heads, in_dim, out_dim, concat=not last))
        in_dim = out_dim * heads
    return tuple(plan)


# --------------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------------
def _pyg() -> Any:
    return import_pyg_nn("graphnas")


def _single_head(agg: str, in_dim: int, out_dim: int) -> nn.Module:
    pyg = _pyg()
    if agg == "gcn":
        return pyg.GCNConv(in_dim, out_dim)
    if agg == "sage":
        return pyg.SAGEConv(in_dim, out_dim, aggr="mean")
    if agg == "gin":
        return pyg.GINConv(nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim)))
    if agg == "graph":
        return pyg.GraphConv(in_dim, out_dim)
    if agg == "arma":
        return pyg.ARMAConv(in_dim, out_dim)
    if agg == "cheb":
        return pyg.ChebConv(in_dim, out_dim, K=2)
    raise ConfigError(f"graphnas: unknown layer type {agg!r}; types: {', '.join(AGGREGATORS)}")


class Heads(nn.Module):
    """``heads`` independent copies of a layer: outputs concatenated (``concat``) or averaged."""

    def __init__(self, convs: Sequence[nn.Module], concat: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.concat = concat

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        outs = [conv(x, edge_index) for conv in self.convs]
        if len(outs) == 1:
            return outs[0]
        return torch.cat(outs, dim=-1) if self.concat else torch.stack(outs).mean(dim=0)


def make_conv(plan: LayerPlan, dropout: float) -> nn.Module:
    """The module of one layer, called as ``conv(x, edge_index)``; its output is ``out_dim * heads`` wide when
    ``concat``, else ``out_dim``."""
    if plan.agg == "gat":
        return _pyg().GATConv(plan.in_dim, plan.out_dim, heads=plan.heads, concat=plan.concat, dropout=dropout)
    return Heads([_single_head(plan.agg, plan.in_dim, plan.out_dim) for _ in range(plan.heads)], plan.concat)


def make_act(act: Optional[str]) -> nn.Module:
    return nn.Identity() if act is None else ACTIVATIONS[act]()


class GraphNASLayer(nn.Module):
    """One layer of a standalone network: ``act(conv(x, edge_index))``."""

    def __init__(self, conv: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.act = act


class GraphNASNetwork(GraphNetwork):
    """A stack of layers, each ``act(conv(dropout(x), edge_index))``; returns logits (num_nodes, num_classes)."""

    def __init__(self, layers: Sequence[nn.Module], dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = dropout

    def forward_graph(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = F.dropout(x, self.dropout, self.training)
            x = layer.act(layer.conv(x, edge_index))
        return x


# --------------------------------------------------------------------------------------------------------
# Supernet
# --------------------------------------------------------------------------------------------------------
class ConvChoice(ChoiceModule):
    """The ``layer{i}_agg`` choice: one module per key at this position; runs the one the supernet selected
    (the key also depends on the heads and hidden choices, so :meth:`select` is called after routing)."""

    def __init__(self, name: str, aggs: Sequence[str], candidates: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.choice_name = name
        self.aggs = tuple(aggs)
        self.candidates = nn.ModuleDict(candidates)
        self.active, self.key = self.aggs[0], ""
        self.__dict__["active_op"] = None

    def set_option(self, option: str) -> None:
        if option not in self.aggs:
            raise InvalidArchError(f"choice '{self.choice_name}' has no option '{option}'")
        self.active = option

    def select(self, key: str) -> None:
        self.key = key
        self.__dict__["active_op"] = self.candidates[key]  # a reference, not a registration

    def active_module(self) -> nn.Module:
        op = self.__dict__["active_op"]
        if op is None:
            raise InvalidArchError("no active arch: call set_arch(arch) on the supernet first")
        return op

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.active_module()(x, edge_index)

    def extra_repr(self) -> str:
        return f"choice={self.choice_name!r}, active={self.key!r}"


class SettingChoice(ChoiceModule):
    """A ``heads`` or ``hidden`` choice: records its option, which the supernet folds into the layer's key.

    It holds no weights and adds nothing to the path state dict; :meth:`active_module` is the layer's active
    module (the weights the option selects), so per-choice gradient norms (PA&DA) credit the option with them.
    """

    def __init__(self, name: str, options: Sequence[str], conv: ConvChoice) -> None:
        super().__init__()
        self.choice_name, self.options, self.active = name, tuple(options), options[0]
        self.__dict__["conv"] = conv  # a reference, not a second registration

    def set_option(self, option: str) -> None:
        if option not in self.options:
            raise InvalidArchError(f"choice '{self.choice_name}' has no option '{option}'")
        self.active = option

    def active_module(self) -> nn.Module:
        return self.__dict__["conv"].active_module()

    def active_state_dict(self, prefix: str) -> dict[str, torch.Tensor]:
        return {}

    def extra_repr(self) -> str:
        return f"choice={self.choice_name!r}, active={self.active!r}"


class GraphNASSupernet(GraphNASNetwork, Supernet):
    """The weight-sharing supernet: ``set_arch(arch)`` routes the choices, then selects every layer's key."""

    def __init__(self, layers: Sequence[nn.Module], dropout: float, num_features: int, num_classes: int) -> None:
        super().__init__(layers, dropout)
        self._dims = (num_features, num_classes)
        self._plan: tuple[LayerPlan, ...] | None = None

    def set_arch(self, arch: Mapping[str, str]) -> None:
        self._plan = None  # no stale path if routing fails
        super().set_arch(arch)
        plan = plan_layers(self.active_arch, len(self.layers), *self._dims)
        for layer, lp in zip(self.layers, plan):
            layer.conv.select(lp.key)
        self._plan = plan

    def set_mixture(self, mixture: Any, include: Any = None) -> None:
        raise InvalidArchError("graphnas supernets are single-path only (heads and widths change shapes): no mixture")

    def forward_graph(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if self._plan is None:
            raise InvalidArchError("no active arch: call set_arch(arch) on the supernet first")
        return super().forward_graph(x, edge_index)


# --------------------------------------------------------------------------------------------------------
# Space
# --------------------------------------------------------------------------------------------------------
@dataclass
class GraphNASConfig:
    """Settings of the GraphNAS space: depth, the option sets, and dropout (GraphNAS on Cora: 0.6)."""

    layers: int = 2
    aggregators: List[str] = field(default_factory=lambda: list(AGGREGATORS))
    activations: List[str] = field(default_factory=lambda: list(ACTIVATIONS))
    heads: List[int] = field(default_factory=lambda: [1, 2, 4, 8])
    hidden: List[int] = field(default_factory=lambda: [16, 32, 64, 128])
    dropout: float = 0.6


class GraphNASSpace(SearchSpace):
    """GraphNAS / Auto-GNN micro space: per layer a type, activation (not the last), heads and width (not the
    last). The data spec gives ``in_channels`` = node features and ``num_classes``; its image size is unused."""

    name = "graphnas"
    Config = GraphNASConfig
    takes_graphs = True

    def _make_choices(self) -> Sequence[Choice]:
        cfg = self.config
        named = (("aggregators", cfg.aggregators, AGGREGATORS), ("activations", cfg.activations, ACTIVATIONS))
        for key, values, known in named:
            unknown = [v for v in values if v not in known]
            if unknown or not values:
                what = f"unknown option {unknown[0]!r}" if unknown else "needs at least one option"
                raise ConfigError(f"{self.name}.{key}: {what}; options: {', '.join(known)}")
        for key, values in (("heads", cfg.heads), ("hidden", cfg.hidden)):
            if not values or min(values) < 1 or len(set(values)) != len(values):
                raise ConfigError(f"{self.name}.{key}: needs distinct positive integers, got {list(values)}")
        if cfg.layers < 1:
            raise ConfigError(f"{self.name}.layers must be >= 1, got {cfg.layers}")
        if not 0.0 <= cfg.dropout < 1.0:
            raise ConfigError(f"{self.name}.dropout must be in [0, 1), got {cfg.dropout}")
        if len(set(cfg.aggregators)) != len(cfg.aggregators) or len(set(cfg.activations)) != len(cfg.activations):
            raise ConfigError(f"{self.name}: aggregators and activations must not repeat an option")
        options = {
            "agg": tuple(cfg.aggregators), "act": tuple(cfg.activations),
            "heads": tuple(str(h) for h in cfg.heads), "hidden": tuple(str(h) for h in cfg.hidden),
        }
        choices = []
        for i in range(1, cfg.layers + 1):
            kinds = ("agg", "heads") if i == cfg.layers else ("agg", "act", "heads", "hidden")
            choices += [Choice(choice_name(i, kind), options[kind]) for kind in kinds]
        return choices

    def plan(self, arch: Mapping[str, str]) -> tuple[LayerPlan, ...]:
        """The layers of ``arch``: types, activations, heads, widths and sharing keys."""
        return plan_layers(self.validate(arch), self.config.layers, self.data.in_channels, self.data.num_classes)

    def candidate_layers(self) -> list[list[LayerPlan]]:
        """Per layer position, one plan (activation left out) for every module the supernet holds there: every
        (type, heads, input width, output width) that some arch of the full space uses at that position."""
        cfg, layers = self.config, []
        in_dims = [self.data.in_channels]
        for i in range(1, cfg.layers + 1):
            last = i == cfg.layers
            out_dims = [self.data.num_classes] if last else list(cfg.hidden)
            layers.append([LayerPlan(a, None, h, d, o, not last)
                           for a in cfg.aggregators for h in cfg.heads for d in in_dims for o in out_dims])
            in_dims = sorted({o * h for o in out_dims for h in cfg.heads})
        return layers

    def candidate_keys(self) -> list[list[str]]:
        """Per layer position, the keys of the supernet's modules there (:meth:`candidate_layers`)."""
        return [[lp.key for lp in plans] for plans in self.candidate_layers()]

    def build_supernet(self) -> GraphNASSupernet:
        """Every key's module, created eagerly (see the module docstring), at every layer position."""
        cfg, layers = self.config, []
        for i, plans in enumerate(self.candidate_layers(), start=1):
            last = i == cfg.layers
            candidates = {lp.key: make_conv(lp, cfg.dropout) for lp in plans}
            conv = ConvChoice(choice_name(i, "agg"), cfg.aggregators, candidates)
            layer = nn.Module()
            layer.conv = conv
            if last:  # logits: no activation, no hidden width
                layer.act = nn.Identity()
            else:
                layer.act = OpChoice(choice_name(i, "act"), {a: make_act(a) for a in cfg.activations})
            for kind in ("heads",) if last else SETTINGS:
                layer.add_module(kind, SettingChoice(choice_name(i, kind), [str(v) for v in getattr(cfg, kind)], conv))
            layers.append(layer)
        return GraphNASSupernet(layers, cfg.dropout, self.data.in_channels, self.data.num_classes)

    def build_subnet(self, arch: Mapping[str, str]) -> GraphNASNetwork:
        """The standalone network of ``arch``: plain torch and PyG modules keyed like the supernet's active path
        (``layers.<i>.conv.*``), so :func:`nasframe.export.extract` loads the shared weights strictly."""
        dropout = self.config.dropout
        layers = [GraphNASLayer(make_conv(lp, dropout), make_act(lp.act)) for lp in self.plan(arch)]
        return GraphNASNetwork(layers, dropout)


__all__ = [
    "ACTIVATIONS", "AGGREGATORS", "GraphNASNetwork", "GraphNASSpace", "GraphNASSupernet", "LayerPlan", "choice_name",
    "conv_key", "plan_layers",
]
