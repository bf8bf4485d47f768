"""The NAS-Bench-Graph GNN search space.

From "NAS-Bench-Graph: Benchmarking Graph Neural Architecture Search" (Qin et al., NeurIPS 2022 Datasets and
Benchmarks). A GNN is a DAG of 4 computing nodes over the (optionally pre-processed) node features: computing
node ``i`` (1-based; 0 is the input) reads one earlier node, ``link[i-1]``, and applies one op: ``gat`` (GAT,
4 heads by default, concatenated), ``gcn``, ``gin`` (GIN over one linear layer), ``cheb`` (Chebyshev, K=2),
``sage`` (GraphSAGE), ``arma`` (ARMA, one stack, one layer), ``graph`` (k-GNN ``GraphConv``), ``fc`` (a linear
layer that ignores the graph) or ``skip`` (the identity). The link is one of the benchmark's 9 canonical
patterns (:data:`~nasframe.benchmarks.nasbench_graph.LINKS`). All layers are real ``torch_geometric.nn``
layers (imported when a network is built, so encoding, enumeration and benchmark lookup work without PyG).

**Network** (what the benchmark trains, :class:`GNNBenchNetwork`), as the benchmark authors' published model
code builds it (its ``Net`` and ``Cell``; the pip package ships no model code):

* dropout on the node features, then ``pre_layers`` linear layers (an ELU after the second-to-last one only;
  Cora: none);
* each computing node applies its op to its input; an input that is a computed node's ``hidden`` features
  (not the raw features, nor a chain of skips from them) first goes through that node's
  BatchNorm -> ReLU -> dropout (*pre-activation*: the BatchNorm belongs to the reading node, so a skip of a
  computed node is BatchNorm -> ReLU -> dropout, and a skip of the raw input is the identity);
* the *output nodes* are the leaves of the DAG (nodes no other node reads), except a leaf whose value is the
  raw input itself (a chain of skips from node 0); their features are concatenated, passed through a ReLU and
  mapped by a linear layer (``readout``) to ``hidden`` features, then ``post_layers`` linear layers, the last
  to the classes (an ELU after the second-to-last one only; Cora: ``post_layers=1``, readout then
  classifier); with ``post_layers=0`` the readout maps the concatenation straight to the classes.

This wiring reproduces the parameter count (``para``) the benchmark tabulates for every arch, exactly, on 8
of its 9 data sets (all but Coauthor-Physics, whose table is partly inconsistent), with the per-data-set
sizes of :data:`BENCHMARK_MODELS` -- checked over every key with a closed-form count while writing this
module; the tests build the real modules for samples of archs -- once one correction is made: the
benchmark's model builds a BatchNorm for every computing node, also for a node that reads the raw features
and never uses it, so it counts ``2 * hidden`` unused parameters per such node, which this network does
not create (``para = count_params + 2 * hidden * #nodes reading the raw input``, tested). Input-valued
leaves left out of the readout follow from the benchmark's hash, which counts archs that differ only in
such skips as one model.

The readout is one ``hidden x out`` block per output node plus a bias: the same function and parameter
count as a Linear over the concatenation, stored so that each node position owns its block.

**Encoding.** Choices ``link`` (options ``"0000"``, ``"0001"``, ... the 9 patterns written as digits) and
``op_1`` .. ``op_4``. The one arch the benchmark lacks, every op ``skip``, is not a member of the space, so
:attr:`size` is ``9 * 9**4 - 9 = 59,040`` encodings; they fall into 26,206 benchmark keys (the keys of
``light_read(...)``, see :meth:`GNNBenchSpace.benchmark_key`); :meth:`GNNBenchSpace.canonical` maps an arch
to the benchmark's canonical form of its key. The native string is the package's own constructor call,
``Arch([0, 1, 2, 3], ['gcn', 'gin', 'fc', 'cheb'])`` (see :mod:`nasframe.benchmarks.nasbench_graph`).

**Graphs are passed to ``forward``.** Every network here is called as ``model(x, edge_index)`` with the node
features ``x`` (num_nodes, num_features) and PyG's ``edge_index`` (2, num_edges), and returns logits
(num_nodes, num_classes): full-graph node classification, no state about the graph kept in the module. So
one supernet serves any graph, the standalone subnet is a plain module with the same signature, and a
trainer computes the loss on the rows of its split mask (``loss(model(x, edge_index)[mask], y[mask])``).

**Weight sharing.** The supernet holds, for every node position and op, one block, shared by every arch that
puts that op at that position. Without pre-layers an op's input width depends on what it reads: the raw
node features (``num_features`` wide: node 0 or a skip chain from it) or a computed node (``hidden`` wide),
so positions 2-4 hold one block per (op, input width) -- the weights cannot be shared across widths. The
readout blocks are shared per node position, pre and post layers by all archs. The supernet is single-path
only (no DARTS mixture: the link choice rewires the cell).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, List

import numpy as np
import torch
from torch import nn

from nasframe.benchmarks.nasbench_graph import (
    LINKS,
    NUM_NODES,
    OPS,
    PROTEINS_OPS,
    SKIP,
    benchmark_key,
    decode_key,
    format_native,
    parse_native,
)
from nasframe.core.arch import Arch
from nasframe.core.choice import Choice
from nasframe.core.graph import GraphNetwork
from nasframe.core.modules import ChoiceModule, Supernet
from nasframe.core.space import DataSpec, SearchSpace
from nasframe.errors import ConfigError, InvalidArchError
from search_spaces.layers import import_pyg_nn

#: Computing node ids, as the benchmark numbers them (0 is the input).
NODES: tuple[int, ...] = tuple(range(1, NUM_NODES + 1))
LINK_CHOICE = "link"
#: Input widths of an op: the raw node features, or a computed node's ``hidden`` features.
INPUT, HIDDEN = "input", "hidden"


def op_choice(node: int) -> str:
    """Choice name of computing node ``node`` 's op: ``op_<node>``."""
    return f"op_{node}"


def link_name(link: Sequence[int]) -> str:
    """Option name of a link pattern: its digits, ``(0, 1, 2, 3) -> "0123"``."""
    return "".join(str(v) for v in link)


LINK_NAMES: tuple[str, ...] = tuple(link_name(link) for link in LINKS)
_LINK_BY_NAME: dict[str, tuple[int, ...]] = dict(zip(LINK_NAMES, LINKS))


@dataclass(frozen=True)
class BenchmarkModel:
    """The model size the benchmark trained on one data set (read off its parameter counts, see the module
    docstring) and, for ogbn-proteins, its smaller op set."""

    hidden: int
    pre_layers: int
    post_layers: int
    ops: tuple[str, ...] = OPS


#: Per data set: the hidden size and pre/post layers whose networks have the tabulated ``para`` of every arch
#: (a closed-form count over all 26,206 keys, or 2,021 for proteins, with node features / classes: Cora 1433/7,
#: CiteSeer 3703/6, PubMed 500/3, CS 6805/15, Physics 8415/5, Photo 745/8, Computers 767/10, arXiv 128/40,
#: proteins 8/112). Physics fits 24,639 of its keys; the other 1,567 fit none of the sizes tried (hidden
#: 64/128/256, 0-2 pre and post layers), a flaw of that table.
BENCHMARK_MODELS: dict[str, BenchmarkModel] = {
    "cora": BenchmarkModel(256, 0, 1),
    "citeseer": BenchmarkModel(256, 0, 1),
    "pubmed": BenchmarkModel(128, 0, 0),
    "cs": BenchmarkModel(128, 1, 0),
    "physics": BenchmarkModel(256, 1, 0),
    "photo": BenchmarkModel(128, 0, 0),
    "computers": BenchmarkModel(64, 1, 1),
    "arxiv": BenchmarkModel(128, 0, 1),
    "proteins": BenchmarkModel(256, 1, 1, PROTEINS_OPS),
}


# --------------------------------------------------------------------------------------------------------
# The cell plan: what a (link, ops) pair wires up
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellPlan:
    """The wiring of one arch: each node's source and op, the width its op reads (``input`` / ``hidden``),
    and the output nodes the readout combines (in node order)."""

    link: tuple[int, ...]
    ops: tuple[str, ...]
    widths: tuple[str, ...]
    outputs: tuple[int, ...]


def plan_cell(link: Sequence[int], ops: Sequence[str], raw_input: bool) -> CellPlan:
    """Wire an arch. ``raw_input``: the cell reads the raw features (no pre-layer), so an op reading the
    input, directly or through skips, is ``num_features`` wide."""
    passthrough = [True]  # does node j's value equal the cell input?
    for source, op in zip(link, ops):
        passthrough.append(op == SKIP and passthrough[source])
    widths = tuple(INPUT if raw_input and passthrough[source] else HIDDEN for source in link)
    read = set(link)
    outputs = tuple(node for node in NODES if node not in read and not passthrough[node])
    if not outputs:
        raise InvalidArchError("every op is 'skip': the arch has no GNN layer and no output node")
    return CellPlan(tuple(link), tuple(ops), widths, outputs)


# --------------------------------------------------------------------------------------------------------
# Ops
# --------------------------------------------------------------------------------------------------------
class Dense(nn.Linear):
    """The ``fc`` op: a linear layer on each node's features; the graph is ignored."""

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


class Skip(nn.Identity):
    """The ``skip`` op: the identity (no BatchNorm, activation or dropout), called as ``skip(x, edge_index)``."""

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor | None = None) -> torch.Tensor:
        return x


def _pyg() -> Any:
    return import_pyg_nn("gnn_bench")


def make_conv(op: str, in_dim: int, hidden: int, gat_heads: int) -> nn.Module:
    """The graph layer of ``op`` from ``in_dim`` to ``hidden`` features, called as ``conv(x, edge_index)``."""
    if op == "fc":
        return Dense(in_dim, hidden)
    pyg = _pyg()
    factories: dict[str, Callable[[], nn.Module]] = {
        # heads concatenated to ``hidden``; the package's op list says "GAT with 2 heads" in a comment, this
        # project uses 4: any head count gives the same parameter count, so the tables cannot tell
        "gat": lambda: pyg.GATConv(in_dim, hidden // gat_heads, heads=gat_heads),
        "gcn": lambda: pyg.GCNConv(in_dim, hidden),
        "gin": lambda: pyg.GINConv(nn.Linear(in_dim, hidden)),
        "cheb": lambda: pyg.ChebConv(in_dim, hidden, K=2),
        "sage": lambda: pyg.SAGEConv(in_dim, hidden),
        "arma": lambda: pyg.ARMAConv(in_dim, hidden),
        "graph": lambda: pyg.GraphConv(in_dim, hidden),
    }
    return factories[op]()


class GraphOpBlock(nn.Module):
    """A computing node: ``conv(x, edge_index)``, after ``dropout(relu(batchnorm(x)))`` when it reads a
    computed node's ``hidden`` features (``pre_norm``) -- the pre-activation order of the benchmark's cell."""

    def __init__(self, conv: nn.Module, hidden: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(hidden) if pre_norm else None
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.conv = conv

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if self.bn is not None:
            x = self.drop(self.act(self.bn(x)))
        return self.conv(x, edge_index)


def make_block(op: str, width: str, size: "NetworkSize") -> nn.Module:
    """One computing node's module for ``op`` reading features of ``width`` (``input`` or ``hidden``): a
    skip of the raw input is the identity; anything else is a :class:`GraphOpBlock`."""
    pre_norm = width == HIDDEN
    if op == SKIP and not pre_norm:
        return Skip()
    conv = Skip() if op == SKIP else make_conv(op, size.in_dim(width), size.hidden, size.gat_heads)
    return GraphOpBlock(conv, size.hidden, size.dropout, pre_norm)


class Readout(nn.Module):
    """``bias + sum_i blocks[i](h_i)`` over the output nodes ``i``: a Linear over their concatenation, one
    ``in x out`` weight block per node. Called with ``{node: features}``."""

    def __init__(self, nodes: Sequence[int], in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleDict({str(node): nn.Linear(in_dim, out_dim, bias=False) for node in nodes})
        bound = 1.0 / math.sqrt(in_dim * max(len(nodes), 1))
        self.bias = nn.Parameter(torch.empty(out_dim).uniform_(-bound, bound))

    def forward(self, features: Mapping[int, torch.Tensor]) -> torch.Tensor:
        out = self.bias
        for node, h in features.items():
            out = out + self.blocks[str(node)](h)
        return out


def _linear_stack(in_dim: int, hidden: int, out_dim: int, layers: int) -> nn.Sequential:
    """``layers`` linear layers ``in_dim -> hidden -> ... -> out_dim`` with an ELU after the second-to-last one
    only, as the benchmark's pre- and post-processing layers (with at most one layer, as in every benchmark
    model, no activation at all)."""
    modules: list[nn.Module] = []
    for k in range(layers):
        modules.append(nn.Linear(in_dim if k == 0 else hidden, out_dim if k == layers - 1 else hidden))
        if k == layers - 2:
            modules.append(nn.ELU())
    return nn.Sequential(*modules)


# --------------------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NetworkSize:
    num_features: int
    num_classes: int
    hidden: int
    pre_layers: int
    post_layers: int
    dropout: float
    gat_heads: int

    @property
    def raw_input(self) -> bool:
        return self.pre_layers == 0

    def in_dim(self, width: str) -> int:
        return self.num_features if width == INPUT else self.hidden

    @property
    def readout_dim(self) -> int:
        return self.hidden if self.post_layers > 0 else self.num_classes


class GNNBenchNetwork(GraphNetwork):
    """The benchmark's GNN around ``nodes`` (id -> module called as ``node(h, edge_index)``) and a readout.

    ``forward(x, edge_index)``: ``x`` (num_nodes, num_features) node features, ``edge_index`` (2, num_edges);
    returns logits (num_nodes, num_classes). With a bound graph, ``forward(node_ids)`` (see
    :mod:`nasframe.core.graph`).
    """

    def __init__(self, size: NetworkSize, nodes: Mapping[int, nn.Module], readout: nn.Module, plan: CellPlan | None) -> None:
        super().__init__()
        self.input_drop = nn.Dropout(size.dropout)
        self.pre = _linear_stack(size.num_features, size.hidden, size.hidden, size.pre_layers)
        self.nodes = nn.ModuleDict({str(node): nodes[node] for node in NODES})
        self.readout_act = nn.ReLU()
        self.readout = readout
        self.tail = _linear_stack(size.hidden, size.hidden, size.num_classes, size.post_layers)
        self._raw_input = size.raw_input
        self._plan = plan

    def forward_graph(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        plan = self._plan
        if plan is None:
            raise InvalidArchError("no active arch: call set_arch(arch) on the supernet first")
        states = [self.pre(self.input_drop(x))]
        for node, source in zip(NODES, plan.link):
            states.append(self.nodes[str(node)](states[source], edge_index))
        return self.tail(self.readout({node: self.readout_act(states[node]) for node in plan.outputs}))


class NodeOpChoice(ChoiceModule):
    """The op choice of one node position: a block per (input width, op); runs the active one.

    Its parameters are ``candidates.<width>.<op>.*``; in the standalone subnet the chosen block sits where
    this module is (:meth:`active_module`). The width is set by the supernet from the whole arch.
    """

    def __init__(self, choice_name: str, candidates: Mapping[str, Mapping[str, nn.Module]]) -> None:
        super().__init__()
        self.choice_name = choice_name
        self.candidates = nn.ModuleDict({width: nn.ModuleDict(ops) for width, ops in candidates.items()})
        self.active = next(iter(next(iter(candidates.values()))))
        self.width = next(iter(candidates))
        self._refresh()

    def set_option(self, option: str) -> None:
        if option not in next(iter(self.candidates.values())):
            raise InvalidArchError(f"choice '{self.choice_name}' has no option '{option}'")
        self.active = option
        self._refresh()

    def set_width(self, width: str) -> None:
        if width not in self.candidates:
            raise InvalidArchError(f"choice '{self.choice_name}': no {width}-width candidates at this position")
        self.width = width
        self._refresh()

    def _refresh(self) -> None:
        self.__dict__["active_op"] = self.candidates[self.width][self.active]  # a reference, not a registration

    def active_module(self) -> nn.Module:
        return self.__dict__["active_op"]

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.__dict__["active_op"](x, edge_index)

    def extra_repr(self) -> str:
        return f"choice={self.choice_name!r}, active={self.active!r}, width={self.width!r}"


class ReadoutChoice(Readout, ChoiceModule):
    """The readout of the supernet: blocks for every node position; the active arch's output nodes form the
    subnet's readout (:meth:`active_module`, sharing the tensors). Routed by the ``link`` choice; the output
    nodes (which depend on the ops too) are set by the supernet."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(NODES, in_dim, out_dim)
        self.choice_name = LINK_CHOICE
        self.active = LINK_NAMES[-1]
        self.outputs: tuple[int, ...] = (NODES[-1],)

    def set_option(self, option: str) -> None:
        if option not in _LINK_BY_NAME:
            raise InvalidArchError(f"choice '{self.choice_name}' has no option '{option}'")
        self.active = option

    def active_module(self) -> nn.Module:
        view = nn.Module.__new__(Readout)
        nn.Module.__init__(view)
        view.blocks = nn.ModuleDict({str(node): self.blocks[str(node)] for node in self.outputs})
        view.bias = self.bias
        return view

    def extra_repr(self) -> str:
        return f"choice={self.choice_name!r}, active={self.active!r}, outputs={self.outputs}"


class GNNBenchSupernet(GNNBenchNetwork, Supernet):
    """The weight-sharing supernet: ``set_arch(arch)`` routes the op and link choices, then wires the cell."""

    def set_arch(self, arch: Mapping[str, str]) -> None:
        self._plan = None  # no stale wiring if routing fails
        super().set_arch(arch)
        active = self.active_arch
        assert active is not None
        try:
            plan = plan_cell(_LINK_BY_NAME[active[LINK_CHOICE]], [active[op_choice(n)] for n in NODES], self._raw_input)
        except InvalidArchError:
            self.__dict__.pop("_nasframe_active_arch", None)
            raise
        for node, width in zip(NODES, plan.widths):
            self.nodes[str(node)].set_width(width)
        self.readout.outputs = plan.outputs
        self._plan = plan

    def set_mixture(self, mixture: Any, include: Any = None) -> None:
        raise InvalidArchError(
            "gnn_bench supernets are single-path only (the link choice rewires the cell); no DARTS mixture"
        )


# --------------------------------------------------------------------------------------------------------
# Space
# --------------------------------------------------------------------------------------------------------
@dataclass
class GNNBenchConfig:
    """Settings of the NAS-Bench-Graph space. Defaults: the benchmark's Cora model (hidden 256, no pre-layer,
    one post-layer). Dropout 0.7 is the Cora value of the benchmark's hyperparameter table; neither the package
    nor its tabulated results carry it, so it is not checked here."""

    hidden: int = 256
    pre_layers: int = 0
    post_layers: int = 1
    dropout: float = 0.7
    gat_heads: int = 4
    ops: List[str] = field(default_factory=lambda: list(OPS))  # ogbn-proteins: gcn, sage, arma, fc, skip


class GNNBenchSpace(SearchSpace):
    """The NAS-Bench-Graph space: a ``link`` choice over 9 patterns and ``op_1`` .. ``op_4`` over the ops.

    The data spec gives ``in_channels`` = node feature size and ``num_classes``; its image size is unused.
    """

    name = "gnn_bench"
    Config = GNNBenchConfig
    has_native_string = True
    takes_graphs = True

    @classmethod
    def for_benchmark(cls, dataset: str, data: DataSpec, **overrides: Any) -> GNNBenchSpace:
        """The space with the model size the benchmark trained on ``dataset`` (:data:`BENCHMARK_MODELS`)."""
        model = BENCHMARK_MODELS.get(dataset.lower())
        if model is None:
            raise ConfigError(f"no benchmark model size for {dataset!r}; known: {', '.join(BENCHMARK_MODELS)}")
        settings = {
            "hidden": model.hidden, "pre_layers": model.pre_layers, "post_layers": model.post_layers, "ops": list(model.ops)
        }
        return cls(data, **{**settings, **overrides})

    def _make_choices(self) -> Sequence[Choice]:
        cfg = self.config
        unknown = [op for op in cfg.ops if op not in OPS]
        if unknown:
            raise ConfigError(f"{self.name}.ops: unknown op {unknown[0]!r}; ops: {', '.join(OPS)}")
        ops = tuple(op for op in OPS if op in cfg.ops)  # the benchmark's order, each once
        if not any(op != SKIP for op in ops):
            raise ConfigError(f"{self.name}.ops: needs at least one op besides 'skip'")
        if cfg.hidden < 1 or cfg.pre_layers < 0 or cfg.post_layers < 0 or cfg.gat_heads < 1:
            raise ConfigError(f"{self.name}: hidden and gat_heads must be >= 1, pre_layers and post_layers >= 0")
        if "gat" in ops and cfg.hidden % cfg.gat_heads:
            raise ConfigError(f"{self.name}: hidden ({cfg.hidden}) must be a multiple of gat_heads ({cfg.gat_heads})")
        if not 0.0 <= cfg.dropout < 1.0:
            raise ConfigError(f"{self.name}.dropout must be in [0, 1), got {cfg.dropout}")
        self.ops = ops
        return [Choice(LINK_CHOICE, LINK_NAMES)] + [Choice(op_choice(node), ops) for node in NODES]

    # -- membership: every op 'skip' is not an arch ----------------------------------------------------
    def validate(self, arch: Mapping[str, str]) -> Arch:
        arch = super().validate(arch)
        if all(arch[op_choice(node)] == SKIP for node in NODES):
            raise InvalidArchError(
                f"{self.name}: every op is 'skip', so the arch has no GNN layer (the benchmark holds none); "
                f"choose another op for one of {', '.join(op_choice(n) for n in NODES)}"
            )
        return arch

    @property
    def size(self) -> int:
        """Number of archs: every combination of options except those with every op ``skip``."""
        all_skip = math.prod(1 if c.name == LINK_CHOICE else int(SKIP in c.options) for c in self.choices)
        return math.prod(len(c) for c in self.choices) - all_skip * len(self.choice(LINK_CHOICE))

    @property
    def independent_choices(self) -> bool:
        return False  # the op choices together must not be all 'skip'

    def _redraw(self, draw: Callable[[], Arch]) -> Arch:
        for _ in range(10_000):
            arch = draw()
            if self.contains(arch):
                return arch
        raise InvalidArchError(f"{self.name}: could not draw an arch with a GNN layer")

    def sample(self, rng: np.random.Generator) -> Arch:
        """Uniform over the valid archs (rejection of the all-skip ones)."""
        return self._redraw(lambda: super(GNNBenchSpace, self).sample(rng))

    def mutate(self, arch: Mapping[str, str], rng: np.random.Generator, prob: float = 0.1) -> Arch:
        return self._redraw(lambda: super(GNNBenchSpace, self).mutate(arch, rng, prob))

    def crossover(self, first: Mapping[str, str], second: Mapping[str, str], rng: np.random.Generator) -> Arch:
        return self._redraw(lambda: super(GNNBenchSpace, self).crossover(first, second, rng))

    def enumerate(self) -> Iterator[Arch]:
        """Every arch, in lexicographic order of option indices (link first)."""
        return (arch for arch in super().enumerate() if not all(arch[op_choice(n)] == SKIP for n in NODES))

    # -- the benchmark's encoding ----------------------------------------------------------------------
    def link_and_ops(self, arch: Mapping[str, str]) -> tuple[tuple[int, ...], tuple[str, ...]]:
        arch = self.validate(arch)
        return _LINK_BY_NAME[arch[LINK_CHOICE]], tuple(arch[op_choice(node)] for node in NODES)

    def from_link_and_ops(self, link: Sequence[int], ops: Sequence[str]) -> Arch:
        link = tuple(link)
        if link not in _LINK_BY_NAME.values():
            raise InvalidArchError(
                f"{self.name}: link {list(link)} is not one of the benchmark's 9 patterns: "
                + ", ".join(str(list(p)) for p in LINKS)
            )
        return self.validate(Arch({LINK_CHOICE: link_name(link), **{op_choice(n): op for n, op in zip(NODES, ops)}}))

    def format(self, arch: Mapping[str, str]) -> str:
        """``Arch([0, 1, 2, 3], ['gcn', 'gin', 'fc', 'cheb'])``."""
        return format_native(*self.link_and_ops(arch))

    def parse_native(self, text: str) -> Arch:
        return self.from_link_and_ops(*parse_native(text))

    def benchmark_key(self, arch: Mapping[str, str]) -> int:
        """The arch's key in the NAS-Bench-Graph tables: ``nas_bench_graph.Arch(link, ops).valid_hash()``
        (needs the ``nas-bench-graph`` package)."""
        return benchmark_key(*self.link_and_ops(arch))

    def canonical(self, arch: Mapping[str, str]) -> Arch:
        """The benchmark's canonical form of ``arch`` (what its key encodes); archs with one key are one
        model up to the order of weights (needs ``nas-bench-graph``)."""
        link, ops = decode_key(self.benchmark_key(arch))
        return Arch({LINK_CHOICE: link_name(link), **{op_choice(n): op for n, op in zip(NODES, ops)}})

    def plan(self, arch: Mapping[str, str]) -> CellPlan:
        return plan_cell(*self.link_and_ops(arch), raw_input=self.config.pre_layers == 0)

    # -- structure features (for learned models) -------------------------------------------------------
    @property
    def structure_feature_scales(self) -> dict[str, float]:
        """Per op of the space: ``count_<op>`` (nodes applying it, at most 4), ``output_<op>`` (output nodes
        applying it, 4), ``path_<op>`` (its uses summed over the paths from the input to each output node, at
        most 6: three outputs two nodes deep), ``first_<op>`` (nodes applying it to the cell input, 4); then
        ``outputs`` (output nodes, 4) and ``max_depth`` / ``min_depth`` (the most / fewest layers other than
        ``skip`` on a path to an output node, 4)."""
        per_op = {"count": 4.0, "output": 4.0, "path": 6.0, "first": 4.0}
        scales = {f"{kind}_{op}": top for kind, top in per_op.items() for op in self.ops}
        return {**scales, "outputs": 4.0, "max_depth": 4.0, "min_depth": 4.0}

    def structure_features(self, arch: Mapping[str, str]) -> dict[str, float]:
        """The features of :attr:`structure_feature_scales` for ``arch`` as wired by :meth:`plan` (output nodes:
        those the readout combines). They count ops by where they act, so archs that differ only by which node
        position holds an op of the same role (the benchmark's isomorphic twins) get the same counts, which the
        one-hot encoding, position by position, does not give."""
        plan = self.plan(arch)
        link, ops = plan.link, plan.ops
        features = dict.fromkeys(self.structure_feature_scales, 0.0)
        depths = []
        for node, op in zip(NODES, ops):
            features[f"count_{op}"] += 1
            if link[node - 1] == 0:
                features[f"first_{op}"] += 1
        for output in plan.outputs:
            features[f"output_{ops[output - 1]}"] += 1
            node, layers = output, 0
            while node:  # walk back to the input
                features[f"path_{ops[node - 1]}"] += 1
                layers += ops[node - 1] != SKIP
                node = link[node - 1]
            depths.append(layers)
        features.update(outputs=float(len(plan.outputs)), max_depth=float(max(depths)), min_depth=float(min(depths)))
        return features

    # -- networks --------------------------------------------------------------------------------------
    @property
    def network_size(self) -> NetworkSize:
        cfg = self.config
        return NetworkSize(
            self.data.in_channels, self.data.num_classes,
            cfg.hidden, cfg.pre_layers, cfg.post_layers, cfg.dropout, cfg.gat_heads,
        )

    def build_supernet(self) -> GNNBenchSupernet:
        """Blocks per (node position, input width, op); widths a position can never read are left out."""
        size = self.network_size
        nodes = {}
        for node in NODES:
            widths = (INPUT, HIDDEN) if size.raw_input and node > 1 else (INPUT,) if size.raw_input else (HIDDEN,)
            candidates = {
                width: {op: make_block(op, width, size) for op in self.ops}
                for width in widths
            }
            nodes[node] = NodeOpChoice(op_choice(node), candidates)
        return GNNBenchSupernet(size, nodes, ReadoutChoice(size.hidden, size.readout_dim), plan=None)

    def build_subnet(self, arch: Mapping[str, str]) -> GNNBenchNetwork:
        """The standalone network of ``arch``: plain torch and torch_geometric modules, keyed like the
        supernet's active path (so :func:`nasframe.export.extract` loads the inherited weights strictly)."""
        size, plan = self.network_size, self.plan(arch)
        nodes = {
            node: make_block(op, width, size)
            for node, op, width in zip(NODES, plan.ops, plan.widths)
        }
        return GNNBenchNetwork(size, nodes, Readout(plan.outputs, size.hidden, size.readout_dim), plan)


__all__ = [
    "BENCHMARK_MODELS",
    "CellPlan",
    "GNNBenchNetwork",
    "GNNBenchSpace",
    "GNNBenchSupernet",
    "LINK_NAMES",
    "NODES",
    "PROTEINS_OPS",
    "link_name",
    "op_choice",
    "plan_cell",
]
