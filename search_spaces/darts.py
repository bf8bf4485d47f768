"""The DARTS CNN search space.

From "DARTS: Differentiable Architecture Search" (Liu, Simonyan & Yang, ICLR 2019). A cell has 2 input nodes
(the outputs of the two previous cells, states 0 and 1) and 4 intermediate nodes (states 2..5); node ``i``
sums one op applied to each of two earlier states, and the cell outputs the concatenation of its 4
intermediate nodes. Ops: none, max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5,
dil_conv_3x3, dil_conv_5x5. There is a normal cell and a reduction cell (its ops on the input states have
stride 2); the search network stacks ``layers`` cells with reduction cells at 1/3 and 2/3 of the depth.

nasframe's encoding: one choice per edge, ``<cell>_<node>_<input>`` (e.g. ``normal_3_1``: into node 3 from
state 1), over all 8 ops. An arch is valid when each intermediate node has exactly 2 edges that are not
``none`` -- the DARTS genotype. 14 edges per cell; (1 * 3 * 6 * 10 * 7^8)^2 ~ 1.1e18 archs. The native string
is the community's ``Genotype(normal=[(op, input), ...], normal_concat=[2, 3, 4, 5], reduce=[...],
reduce_concat=[2, 3, 4, 5])``.

The search network serves both as supernet (every edge an :class:`~nasframe.core.modules.OpChoice`, single-path
or differentiable) and as the standalone subnet of an arch (the chosen op per edge, same module names): a
subnet's output equals the supernet path's. As in DARTS's search, BatchNorm is not affine and pooling ops are
followed by a BatchNorm. :meth:`DARTSSpace.build_eval_network` builds DARTS's evaluation network from a genotype
(20 cells, C=36, auxiliary head, drop path) for training from scratch.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.pooling import AvgPool2d
from nasframe.core.choice import Choice
from nasframe.core.eval_network import EvaluationNetwork
from nasframe.core.modules import OpChoice, Supernet, node_sum
from nasframe.core.space import EdgeGroup, SearchSpace
from nasframe.errors import InvalidArchError
from search_spaces.layers import ReLUConvBN, conv_bn_stem

OPS: tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)
NONE = "none"
CELL_TYPES: tuple[str, ...] = ("normal", "reduce")
NUM_INPUTS = 2  # states 0 and 1: the outputs of the two previous cells
NUM_NODES = 4  # intermediate nodes, states 2..5
NODES: tuple[int, ...] = tuple(range(NUM_INPUTS, NUM_INPUTS + NUM_NODES))
EDGES_PER_NODE = 2
CONCAT: tuple[int, ...] = NODES


def edge_name(cell: str, node: int, source: int) -> str:
    """Choice name of the edge into intermediate ``node`` (2..5) from state ``source`` of ``cell``."""
    return f"{cell}_{node}_{source}"


def node_edges(cell: str, node: int) -> tuple[str, ...]:
    return tuple(edge_name(cell, node, j) for j in range(node))


# --------------------------------------------------------------------------------------------------------
# Ops (as defined in DARTS's operations.py)
# --------------------------------------------------------------------------------------------------------
class ZeroOp(nn.Module):
    """``none``: contributes nothing; cells skip it. Called only for its output shape."""

    is_zero = True

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class DilConv(nn.Sequential):
    """ReLU -> dilated depthwise conv -> pointwise conv -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked (ReLU -> depthwise conv -> pointwise conv -> BN); the first carries the stride."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, 1, padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halves the resolution: two 1x1 stride-2 convs on offset grids, concatenated, then BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        if c_out % 2:
            raise InvalidArchError(f"darts: FactorizedReduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def make_op(name: str, channels: int, stride: int, affine: bool, pool_bn: bool = False) -> nn.Module:
    """One DARTS op on ``channels`` channels; ``pool_bn`` appends a non-affine BN to pooling (search network)."""
    c = channels
    if name == "none":
        return ZeroOp(stride)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        pool = (
            nn.MaxPool2d(3, stride=stride, padding=1)
            if name == "max_pool_3x3"
            else AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        )
        return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False)) if pool_bn else pool
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    if name == "sep_conv_3x3":
        return SepConv(c, c, 3, stride, 1, affine)
    if name == "sep_conv_5x5":
        return SepConv(c, c, 5, stride, 2, affine)
    if name == "dil_conv_3x3":
        return DilConv(c, c, 3, stride, 2, 2, affine)
    if name == "dil_conv_5x5":
        return DilConv(c, c, 5, stride, 4, 2, affine)
    raise InvalidArchError(f"darts: unknown op {name!r}; ops: {', '.join(OPS)}")


def preprocessing(c_prev_prev: int, c_prev: int, channels: int, reduction_prev: bool, affine: bool) -> tuple[nn.Module, nn.Module]:
    """A cell's input adapters: the two previous cells' outputs brought to ``channels`` channels and, after a
    reduction cell, the older one to the newer one's resolution."""
    first = (
        FactorizedReduce(c_prev_prev, channels, affine)
        if reduction_prev
        else ReLUConvBN(c_prev_prev, channels, 1, affine=affine)
    )
    return first, ReLUConvBN(c_prev, channels, 1, affine=affine)


# --------------------------------------------------------------------------------------------------------
# Search network: supernet and subnet
# --------------------------------------------------------------------------------------------------------
class SearchCell(nn.Module):
    """A DARTS cell whose edges come from ``make_edge(name, stride)``; ``none`` edges are skipped."""

    def __init__(
        self,
        cell_type: str,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction_prev: bool,
        make_edge: Callable[[str, int], nn.Module],
        affine: bool,
    ) -> None:
        super().__init__()
        self.reduction = cell_type == "reduce"
        self.preprocess0, self.preprocess1 = preprocessing(c_prev_prev, c_prev, channels, reduction_prev, affine)
        edges = {}
        for node in NODES:
            for j in range(node):
                stride = 2 if self.reduction and j < NUM_INPUTS else 1
                edges[edge_name(cell_type, node, j)] = make_edge(edge_name(cell_type, node, j), stride)
        self.edges = nn.ModuleDict(edges)
        self._incoming = [[(j, edge_name(cell_type, node, j)) for j in range(node)] for node in NODES]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for incoming in self._incoming:
            total = node_sum((self.edges[name], states[j]) for j, name in incoming)
            if total is None:  # no edge into this node (only outside valid archs)
                step = 2 if self.reduction else 1
                total = torch.zeros_like(states[1][:, :, ::step, ::step])
            states.append(total)
        return torch.cat([states[i] for i in CONCAT], dim=1)


class DARTSSearchNetwork(nn.Module):
    """DARTS's search network: stem (3x3 conv, ``stem_multiplier * C`` channels), ``layers`` cells (reduction
    cells at ``layers // 3`` and ``2 * layers // 3`` double the channels), global pooling, linear classifier."""

    def __init__(
        self,
        make_edge: Callable[[str, int, int], nn.Module],
        channels: int,
        layers: int,
        in_channels: int,
        num_classes: int,
        stem_multiplier: int = 3,
        affine: bool = False,
    ) -> None:
        super().__init__()
        c_curr = stem_multiplier * channels
        self.stem = conv_bn_stem(in_channels, c_curr)
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, channels
        cells = []
        reduction_prev = False
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            if reduction:
                c_curr *= 2
            cell_type = "reduce" if reduction else "normal"
            cell = SearchCell(
                cell_type, c_prev_prev, c_prev, c_curr, reduction_prev,
                lambda name, stride, c=c_curr: make_edge(name, c, stride), affine,
            )
            cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, len(CONCAT) * c_curr
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(s1.mean(dim=(2, 3)))


class DARTSSupernet(DARTSSearchNetwork, Supernet):
    """The DARTS supernet: every edge of every cell an OpChoice over the 8 ops; all normal cells share the
    ``normal_*`` choices, all reduction cells the ``reduce_*`` choices."""


def reduction_layers(layers: int) -> tuple[int, ...]:
    return (layers // 3, 2 * layers // 3) if layers >= 3 else ()


# --------------------------------------------------------------------------------------------------------
# Evaluation network (trained from scratch on a genotype)
# --------------------------------------------------------------------------------------------------------
def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole examples of a branch with probability ``drop_prob``, scaling the rest by ``1 / (1 - p)``."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class EvalCell(nn.Module):
    """A cell of the evaluation network: only the genotype's edges, with drop path on non-identity ops."""

    def __init__(self, cell_type: str, edges: Sequence[tuple[str, int, int]], c_prev_prev: int, c_prev: int,
                 channels: int, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = cell_type == "reduce"
        self.preprocess0, self.preprocess1 = preprocessing(c_prev_prev, c_prev, channels, reduction_prev, True)
        self._edges = [(node, j, edge_name(cell_type, node, j)) for node, j, _ in edges]
        self.edges = nn.ModuleDict({
            edge_name(cell_type, node, j): make_op(op, channels, 2 if self.reduction and j < NUM_INPUTS else 1, True)
            for node, j, op in edges
        })
        self.drop_prob = 0.0

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in NODES:
            total = None
            for target, j, name in self._edges:
                if target != node:
                    continue
                op = self.edges[name]
                out = op(states[j])
                if self.training and self.drop_prob > 0 and not isinstance(op, nn.Identity):
                    out = drop_path(out, self.drop_prob)
                total = out if total is None else total + out
            states.append(total)
        return torch.cat([states[i] for i in CONCAT], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS's auxiliary classifier on the 8x8 feature map after the second reduction (CIFAR)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class DARTSEvalNetwork(EvaluationNetwork):
    """DARTS's evaluation network (NetworkCIFAR): ``layers`` cells of the genotype, affine BN, optional
    auxiliary head at 2/3 depth (its logits are returned as a second output in training mode) and drop path
    (``drop_path_prob``, usually raised linearly over training by the user's schedule)."""

    def __init__(self, arch: Mapping[str, str], channels: int, layers: int, in_channels: int, num_classes: int,
                 auxiliary: bool = True, drop_path_prob: float = 0.2, stem_multiplier: int = 3) -> None:
        super().__init__()
        c_curr = stem_multiplier * channels
        self.stem = conv_bn_stem(in_channels, c_curr)
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, channels
        cells, reduction_prev = [], False
        self.aux_position = 2 * layers // 3 if auxiliary else -1
        self.auxiliary_head: AuxiliaryHead | None = None
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            if reduction:
                c_curr *= 2
            cell_type = "reduce" if reduction else "normal"
            edges = [(node, j, arch[edge_name(cell_type, node, j)]) for node in NODES for j in range(node)
                     if arch[edge_name(cell_type, node, j)] != NONE]
            cells.append(EvalCell(cell_type, edges, c_prev_prev, c_prev, c_curr, reduction_prev))
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, len(CONCAT) * c_curr
            if i == self.aux_position:
                self.auxiliary_head = AuxiliaryHead(c_prev, num_classes)
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(c_prev, num_classes)
        self.drop_path_prob = drop_path_prob

    def apply_drop_path_prob(self, probability: float) -> None:
        for cell in self.cells:
            cell.drop_prob = probability

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_position and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(s1.mean(dim=(2, 3)))
        return (logits, aux) if aux is not None else logits


# --------------------------------------------------------------------------------------------------------
# Space
# --------------------------------------------------------------------------------------------------------
@dataclass
class DARTSConfig:
    """Settings of the DARTS search network. DARTS searches with channels=16, layers=8."""

    channels: int = 16
    layers: int = 8
    stem_multiplier: int = 3
    bn_affine: bool = False  # DARTS's search network uses non-affine BatchNorm
    pool_bn: bool = True  # BatchNorm after pooling ops, as DARTS's MixedOp


_GENOTYPE_RE = re.compile(
    r"^\s*Genotype\s*\((?P<body>.*)\)\s*$", re.DOTALL
)
_FIELD_RE = re.compile(r"\b([A-Za-z_]\w*)\s*=\s*")
_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


class DARTSSpace(SearchSpace):
    """The DARTS cell space (normal + reduction cell); native string: the DARTS ``Genotype(...)``."""

    name = "darts"
    Config = DARTSConfig
    zero_option = NONE
    has_eval_network = True

    def _make_choices(self) -> Sequence[Choice]:
        cfg = self.config
        if cfg.channels < 2 or cfg.channels % 2 or cfg.layers < 1 or cfg.stem_multiplier < 1:
            raise InvalidArchError(f"{self.name}: need an even channels >= 2, layers >= 1, stem_multiplier >= 1")
        return [Choice(edge_name(cell, node, j), OPS) for cell in CELL_TYPES for node in NODES for j in range(node)]

    # -- topology --------------------------------------------------------------------------------------
    def edge_groups(self) -> list[EdgeGroup]:
        """Each intermediate node keeps exactly 2 of its incoming edges (the others are ``none``)."""
        return [EdgeGroup(f"{cell} node {node}", node_edges(cell, node), EDGES_PER_NODE)
                for cell in CELL_TYPES for node in NODES]

    def _node_assignments(self, cell: str, node: int) -> list[tuple[tuple[str, str], ...]]:
        """Every valid assignment of one node in this (sub-)space: ((edge, op), ...) for all incoming edges."""
        names = node_edges(cell, node)
        options = {c.name: c.options for c in self.choices if c.name in names}
        out = []
        for pair in itertools.combinations(names, EDGES_PER_NODE):
            if any(NONE not in options[n] for n in names if n not in pair):
                continue
            ops = [[o for o in options[n] if o != NONE] for n in pair]
            for chosen in itertools.product(*ops):
                assignment = dict.fromkeys(names, NONE)
                assignment.update(zip(pair, chosen))
                out.append(tuple(assignment.items()))
        return out

    def _node_counts(self, cell: str, node: int) -> list[tuple[tuple[str, str], int]]:
        """For each pair of kept edges, how many op assignments the (sub-)space allows."""
        names = node_edges(cell, node)
        options = {c.name: c.options for c in self.choices if c.name in names}
        counts = []
        for pair in itertools.combinations(names, EDGES_PER_NODE):
            others_ok = all(NONE in options[n] for n in names if n not in pair)
            count = math.prod(sum(o != NONE for o in options[n]) for n in pair) if others_ok else 0
            counts.append((pair, count))
        return counts

    @property
    def size(self) -> int:
        return math.prod(sum(c for _, c in self._node_counts(cell, node)) for cell in CELL_TYPES for node in NODES)

    def validate(self, arch: Mapping[str, str]) -> Arch:
        arch = super().validate(arch)
        for cell in CELL_TYPES:
            for node in NODES:
                kept = [n for n in node_edges(cell, node) if arch[n] != NONE]
                if len(kept) != EDGES_PER_NODE:
                    raise InvalidArchError(
                        f"{self.name}: node {node} of the {cell} cell has {len(kept)} input edges that are not "
                        f"'none' ({', '.join(kept) or 'none'}); a DARTS cell node keeps exactly {EDGES_PER_NODE}"
                    )
        return arch

    def sample(self, rng: np.random.Generator) -> Arch:
        """Uniform over the valid archs of the (sub-)space: per node, a pair of kept edges drawn in proportion
        to its number of op assignments, then each kept edge's op uniform among its non-``none`` options."""
        options = {c.name: c.options for c in self.choices}
        out: dict[str, str] = {}
        for cell in CELL_TYPES:
            for node in NODES:
                counts = self._node_counts(cell, node)
                weights = np.array([c for _, c in counts], dtype=float)
                if weights.sum() == 0:
                    raise InvalidArchError(f"{self.name}: this sub-space leaves node {node} of the {cell} cell no valid edges")
                pair = counts[int(rng.choice(len(counts), p=weights / weights.sum()))][0]
                for name in node_edges(cell, node):
                    if name in pair:
                        ops = [o for o in options[name] if o != NONE]
                        out[name] = ops[int(rng.integers(len(ops)))]
                    else:
                        out[name] = NONE
        return Arch({c.name: out[c.name] for c in self.choices})

    def mutate(self, arch: Mapping[str, str], rng: np.random.Generator, prob: float = 0.1) -> Arch:
        """Each kept edge independently, with probability ``prob``, changes its op (to another allowed op) or
        moves to another input of its node (keeping the op where allowed); the result stays valid."""
        arch = self.validate(arch)
        options = {c.name: c.options for c in self.choices}
        out = dict(arch)
        for cell in CELL_TYPES:
            for node in NODES:
                for name in [n for n in node_edges(cell, node) if out[n] != NONE]:
                    if rng.random() >= prob:
                        continue
                    op = out[name]
                    other_ops = [o for o in options[name] if o not in (NONE, op)]
                    free = [n for n in node_edges(cell, node) if out[n] == NONE and NONE in options[name]
                            and any(o != NONE for o in options[n])]
                    if other_ops and (not free or rng.random() < 0.5):
                        out[name] = other_ops[int(rng.integers(len(other_ops)))]
                    elif free:
                        target = free[int(rng.integers(len(free)))]
                        target_ops = [o for o in options[target] if o != NONE]
                        out[name] = NONE
                        out[target] = op if op in target_ops else target_ops[int(rng.integers(len(target_ops)))]
        return Arch({c.name: out[c.name] for c in self.choices})

    def crossover(self, first: Mapping[str, str], second: Mapping[str, str], rng: np.random.Generator) -> Arch:
        """Each node's incoming edges come together from either parent (with probability 1/2)."""
        first, second = self.validate(first), self.validate(second)
        out: dict[str, str] = {}
        for cell in CELL_TYPES:
            for node in NODES:
                parent = first if rng.random() < 0.5 else second
                out.update({n: parent[n] for n in node_edges(cell, node)})
        return Arch({c.name: out[c.name] for c in self.choices})

    def enumerate(self) -> Iterator[Arch]:
        """Every valid arch (lazily: the full space has ~1.1e18)."""
        per_node = [self._node_assignments(cell, node) for cell in CELL_TYPES for node in NODES]
        order = [c.name for c in self.choices]
        for combo in itertools.product(*per_node):
            assignment = dict(item for node in combo for item in node)
            yield Arch({n: assignment[n] for n in order})

    # -- native strings --------------------------------------------------------------------------------
    def format(self, arch: Mapping[str, str]) -> str:
        arch = self.validate(arch)
        parts = []
        for cell in CELL_TYPES:
            pairs = [(arch[name], int(name.rsplit("_", 1)[1])) for node in NODES for name in node_edges(cell, node)
                     if arch[name] != NONE]
            parts.append(f"{cell}=[" + ", ".join(f"('{op}', {j})" for op, j in pairs) + "]")
            parts.append(f"{cell}_concat={list(CONCAT)}")
        return "Genotype(" + ", ".join(parts) + ")"

    has_native_string = True

    def parse_native(self, text: str) -> Arch:
        """Read a DARTS ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), reduce=[...],
        reduce_concat=[2, 3, 4, 5])``. Nothing is evaluated as code."""
        where = f"invalid DARTS genotype {text[:80]!r}{'...' if len(text) > 80 else ''}"
        match = _GENOTYPE_RE.match(text)
        if not match:
            raise InvalidArchError(f"{where}: expected Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)")
        fields = _split_fields(match.group("body"), where)
        assignment: dict[str, str] = {}
        for cell in CELL_TYPES:
            if cell not in fields:
                raise InvalidArchError(f"{where}: missing field '{cell}'")
            edges = _literal(fields[cell], f"{where}: field '{cell}'")
            if not isinstance(edges, (list, tuple)) or len(edges) != NUM_NODES * EDGES_PER_NODE:
                raise InvalidArchError(
                    f"{where}: '{cell}' must list {NUM_NODES * EDGES_PER_NODE} (op, input) pairs, two per node"
                )
            for name in (edge_name(cell, node, j) for node in NODES for j in range(node)):
                assignment[name] = NONE
            for k, entry in enumerate(edges):
                node = NODES[k // EDGES_PER_NODE]
                if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)
                        and isinstance(entry[1], int)):
                    raise InvalidArchError(f"{where}: '{cell}' entry {k} ({entry!r}) must be an (op, input) pair")
                op, source = entry
                if op not in OPS or op == NONE:
                    raise InvalidArchError(f"{where}: unknown op {op!r} in '{cell}' entry {k}; ops: {', '.join(OPS[1:])}")
                if not 0 <= source < node:
                    raise InvalidArchError(f"{where}: '{cell}' entry {k}: node {node} can take input 0..{node - 1}, got {source}")
                name = edge_name(cell, node, source)
                if assignment[name] != NONE:
                    raise InvalidArchError(f"{where}: node {node} of '{cell}' takes input {source} twice; one op per edge")
                assignment[name] = op
            concat_text = fields.get(f"{cell}_concat")
            if concat_text is not None and _concat(concat_text, where) != list(CONCAT):
                raise InvalidArchError(f"{where}: {cell}_concat must be {list(CONCAT)} (every intermediate node)")
        return self.validate(Arch({c.name: assignment[c.name] for c in self.choices}))

    # -- networks --------------------------------------------------------------------------------------
    def _network(self, network_cls: type[DARTSSearchNetwork], make_edge: Callable[[str, int, int], nn.Module]) -> DARTSSearchNetwork:
        cfg = self.config
        return network_cls(make_edge, cfg.channels, cfg.layers, self.data.in_channels, self.data.num_classes,
                           cfg.stem_multiplier, cfg.bn_affine)

    def build_supernet(self) -> DARTSSupernet:
        cfg = self.config
        net = self._network(
            DARTSSupernet,
            lambda name, c, stride: OpChoice(name, {op: make_op(op, c, stride, cfg.bn_affine, cfg.pool_bn) for op in OPS}),
        )
        assert isinstance(net, DARTSSupernet)
        return net

    def build_subnet(self, arch: Mapping[str, str]) -> DARTSSearchNetwork:
        arch = self.validate(arch)
        cfg = self.config
        return self._network(
            DARTSSearchNetwork, lambda name, c, stride: make_op(arch[name], c, stride, cfg.bn_affine, cfg.pool_bn)
        )

    def build_eval_network(self, arch: Mapping[str, str], channels: int = 36, layers: int = 20,
                           auxiliary: bool = True, drop_path_prob: float = 0.2) -> DARTSEvalNetwork:
        """DARTS's evaluation network for ``arch`` (CIFAR-10 setting: 20 cells, C=36, auxiliary head, drop path 0.2)."""
        return DARTSEvalNetwork(self.validate(arch), channels, layers, self.data.in_channels, self.data.num_classes,
                                auxiliary, drop_path_prob, self.config.stem_multiplier)


def _split_fields(body: str, where: str) -> dict[str, str]:
    """``name=value`` fields of the Genotype call, split at the field names (values may contain commas)."""
    starts = list(_FIELD_RE.finditer(body))
    if not starts or body[: starts[0].start()].strip():
        raise InvalidArchError(f"{where}: expected keyword fields normal=, normal_concat=, reduce=, reduce_concat=")
    fields: dict[str, str] = {}
    for k, m in enumerate(starts):
        end = starts[k + 1].start() if k + 1 < len(starts) else len(body)
        value = body[m.end() : end].strip().rstrip(",").strip()
        if m.group(1) not in _FIELDS:
            raise InvalidArchError(f"{where}: unknown field '{m.group(1)}'; fields: {', '.join(_FIELDS)}")
        if m.group(1) in fields:
            raise InvalidArchError(f"{where}: field '{m.group(1)}' given twice")
        fields[m.group(1)] = value
    return fields


def _literal(text: str, where: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise InvalidArchError(f"{where}: cannot read {text!r}") from None


def _concat(text: str, where: str) -> list[int]:
    match = re.fullmatch(r"range\(\s*(\d+)\s*,\s*(\d+)\s*\)", text)
    if match:
        return list(range(int(match.group(1)), int(match.group(2))))
    value = _literal(text, f"{where}: concat")
    if not isinstance(value, (list, tuple)):
        raise InvalidArchError(f"{where}: concat must be a list or range(2, 6), got {text!r}")
    return list(value)
