"""The NAS-Bench-201 search space.

From "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search" (Dong & Yang, ICLR 2020).
A cell is a DAG of 4 nodes; node ``i`` sums one op applied to each earlier node ``j < i`` (6 edges), with
ops ``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``: 5^6 = 15,625 archs,
6,466 of them distinct under cell isomorphism. The same cell is stacked N times in each of 3 stages (C, 2C,
4C channels) after a 3x3 conv stem; residual basic blocks with stride 2 reduce between stages; BN-ReLU,
global average pooling and a linear classifier end the network.

The supernet and the standalone subnet are built from one definition of the ops (:func:`make_op`) and of the
cell (:class:`NB201Cell`): in the supernet each edge is an :class:`~nasframe.core.modules.OpChoice`, in the
subnet it is the chosen op, under the same module name.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.pooling import AvgPool2d
from nasframe.core.choice import Choice
from nasframe.core.modules import OpChoice, Supernet, Zero, node_sum
from nasframe.core.space import SearchSpace
from nasframe.errors import InvalidArchError
from search_spaces.layers import ReLUConvBN, conv_bn_stem

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
#: Edges as (to_node, from_node), in the order of the native string.
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(1, NUM_NODES) for j in range(i))


def edge_name(to_node: int, from_node: int) -> str:
    """Choice name of the edge into ``to_node`` from ``from_node``: ``edge_<to>_<from>``."""
    return f"edge_{to_node}_{from_node}"


# --------------------------------------------------------------------------------------------------------
# Ops
# --------------------------------------------------------------------------------------------------------
_OP_FACTORIES: dict[str, Callable[[int, bool], nn.Module]] = {
    "none": lambda c, affine: Zero(),
    "skip_connect": lambda c, affine: nn.Identity(),
    "nor_conv_1x1": lambda c, affine: ReLUConvBN(c, c, 1, affine=affine),
    "nor_conv_3x3": lambda c, affine: ReLUConvBN(c, c, 3, affine=affine),
    "avg_pool_3x3": lambda c, affine: AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
}


def make_op(name: str, channels: int, affine: bool = True) -> nn.Module:
    """One NAS-Bench-201 cell op on ``channels`` channels (stride 1: cells keep the resolution)."""
    return _OP_FACTORIES[name](channels, affine)


class NB201Cell(nn.Module):
    """Node ``i`` = sum over ``j < i`` of ``edge_i_j(node_j)``; the cell outputs node 3.

    ``none`` edges are skipped, not multiplied by zero. A node whose edges are all ``none`` is zero.
    """

    def __init__(self, edges: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.edges = nn.ModuleDict({edge_name(i, j): edges[edge_name(i, j)] for i, j in EDGES})
        self._incoming = [[(j, edge_name(i, j)) for j in range(i)] for i in range(1, NUM_NODES)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for incoming in self._incoming:
            total = node_sum((self.edges[name], nodes[j]) for j, name in incoming)
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[-1]


class ResidualReduction(nn.Module):
    """The residual basic block (stride 2) between stages: ``shortcut(x) + conv_b(conv_a(x))``."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2, affine=affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, stride=1, affine=affine)
        self.shortcut = nn.Sequential(
            AvgPool2d(kernel_size=2, stride=2, padding=0), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """The NAS-Bench-201 macro skeleton around cells made by ``make_cell(channels)``."""

    def __init__(
        self,
        make_cell: Callable[[int], nn.Module],
        channels: int,
        cells_per_stage: int,
        in_channels: int,
        num_classes: int,
        affine: bool = True,
    ) -> None:
        super().__init__()
        self.stem = conv_bn_stem(in_channels, channels)
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c, affine=affine))
                c *= 2
            layers.extend(make_cell(c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.cells(self.stem(x)))
        return self.classifier(out.mean(dim=(2, 3)))


class NB201Supernet(NB201Network, Supernet):
    """The NAS-Bench-201 supernet: every edge of every cell is an OpChoice over all five ops."""


def _isomorphism_key(arch: Mapping[str, str]) -> str:
    nodes = ["0"]
    for i in range(1, NUM_NODES):
        terms = []
        for j in range(i):
            op, source = arch[edge_name(i, j)], nodes[j]
            if op == "none" or source == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(source)
            else:
                terms.append(f"({source})@{op}")
        nodes.append("+".join(sorted(terms)))
    return nodes[-1]


# --------------------------------------------------------------------------------------------------------
# Space
# --------------------------------------------------------------------------------------------------------
_NODE_RE = re.compile(r"^\|(.*)\|$")


@dataclass
class NB201Config:
    """Settings of the NAS-Bench-201 space. The benchmark's networks use channels=16, cells_per_stage=5."""

    channels: int = 16
    cells_per_stage: int = 5
    bn_affine: bool = True


# --------------------------------------------------------------------------------------------------------
# Cell-structure features (training-free, for learned models)
# --------------------------------------------------------------------------------------------------------
#: the ops the features count (every op but ``none``, which computes nothing)
_COUNTED_OPS = OPS[1:]
_OUTPUT = NUM_NODES - 1
#: The cell-structure features, in order, and the largest value each takes in a 4-node cell (a feature is given
#: over it, in [0, 1] as the ranks). A *path* goes from the input node to the output node along edges whose op is
#: not ``none``; an edge *on a path* is one such a path uses (the others compute nothing that reaches the output).
#: They describe the cell as given: isomorphic twins that differ by where a skip_connect sits can differ in skip
#: count and depth (measured: features of the class's canonical cell instead rank no better).
CELL_FEATURES: dict[str, float] = {
    **{op: 6 for op in _COUNTED_OPS},  # number of edges with this op on a path
    "connected": 1,  # 1 if there is a path at all
    "parametric_path": 1,  # 1 if some path has a convolution (the output can be reached through a parametric op)
    "max_convs": 3,  # the most convolutions on one path (the longest parametric path)
    "min_convs": 3,  # the fewest convolutions on one path (0: a shortcut without parameters)
    "paths": 4,  # the number of paths
    "conv_free_paths": 4,  # the number of paths with no convolution
    "depth": 3,  # the most edges on one path (the effective depth of the cell)
    "width": 3,  # the number of edges into the output node that lie on a path (its effective width)
    # GRAF's degree features, per op: the edges on a path that leave the input node / enter the output node
    **{f"from_input_{op}": 3 for op in _COUNTED_OPS},
    **{f"into_output_{op}": 3 for op in _COUNTED_OPS},
}


#: each edge's (to, from) nodes by its choice name
_EDGE_NODES = {edge_name(to, source): (to, source) for to, source in EDGES}


def cell_paths(arch: Mapping[str, str]) -> list[list[str]]:
    """Each path of the cell from the input node to the output node, as the choice names of its edges
    (:func:`edge_name`), skipping ``none`` edges."""
    missing = [name for name in _EDGE_NODES if name not in arch]
    if missing:
        raise ValueError(f"cell features need a NAS-Bench-201 cell: no choice {missing[0]!r} in {dict(arch)}")
    found: list[list[str]] = []

    def walk(node: int, path: list[str]) -> None:
        if node == _OUTPUT:
            found.append(path)
        for to, source in EDGES:
            if source == node and arch[edge_name(to, source)] != "none":
                walk(to, [*path, edge_name(to, source)])

    walk(0, [])
    return found


def cell_features(arch: Mapping[str, str]) -> dict[str, float]:
    """The features of :data:`CELL_FEATURES` of a cell, unscaled (a convolution: an op whose name has ``conv``)."""
    paths = cell_paths(arch)
    on_path = {name for path in paths for name in path}
    convs = [sum("conv" in arch[name] for name in path) for path in paths]
    counts = {op: float(sum(arch[name] == op for name in on_path)) for op in _COUNTED_OPS}
    degrees = {f"{where}_{op}": float(sum(arch[name] == op and test(*_EDGE_NODES[name]) for name in on_path))
               for where, test in (("from_input", lambda to, source: source == 0),
                                   ("into_output", lambda to, source: to == _OUTPUT))
               for op in _COUNTED_OPS}
    return {**counts, "connected": float(bool(paths)), "parametric_path": float(any(convs)),
            "max_convs": float(max(convs, default=0)), "min_convs": float(min(convs, default=0)),
            "paths": float(len(paths)), "conv_free_paths": float(sum(c == 0 for c in convs)),
            "depth": float(max((len(path) for path in paths), default=0)),
            "width": float(sum(_EDGE_NODES[name][0] == _OUTPUT for name in on_path)), **degrees}


class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell space: 6 edge choices over 5 ops; native string ``|op~0|+|op~0|op~1|+|...|``."""

    name = "nb201"
    Config = NB201Config
    zero_option = "none"

    def _make_choices(self) -> Sequence[Choice]:
        if self.config.channels < 1 or self.config.cells_per_stage < 1:
            raise InvalidArchError(f"{self.name}: channels and cells_per_stage must be >= 1")
        return [Choice(edge_name(i, j), OPS) for i, j in EDGES]

    # -- native strings --------------------------------------------------------------------------------
    def format(self, arch: Mapping[str, str]) -> str:
        arch = self.validate(arch)
        groups = []
        for i in range(1, NUM_NODES):
            groups.append("|" + "|".join(f"{arch[edge_name(i, j)]}~{j}" for j in range(i)) + "|")
        return "+".join(groups)

    has_native_string = True

    def parse_native(self, text: str) -> Arch:
        """Read ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        where = f"invalid NAS-Bench-201 arch string {text!r}"
        groups = text.split("+")
        if len(groups) != NUM_NODES - 1:
            raise InvalidArchError(f"{where}: expected {NUM_NODES - 1} node groups joined by '+', got {len(groups)}")
        assignment: dict[str, str] = {}
        for i, group in enumerate(groups, start=1):
            match = _NODE_RE.match(group)
            if not match:
                raise InvalidArchError(f"{where}: node {i} group {group!r} must look like |op~0|...|")
            entries = match.group(1).split("|")
            if len(entries) != i:
                raise InvalidArchError(f"{where}: node {i} needs {i} inputs, got {len(entries)}")
            for j, entry in enumerate(entries):
                op, sep, source = entry.partition("~")
                if not sep or source != str(j):
                    raise InvalidArchError(f"{where}: node {i} entry {entry!r} should be 'op~{j}'")
                if op not in OPS:
                    raise InvalidArchError(f"{where}: unknown op {op!r} on edge {j}->{i}; ops: {', '.join(OPS)}")
                assignment[edge_name(i, j)] = op
        return self.validate(Arch(assignment))

    # -- isomorphism -----------------------------------------------------------------------------------
    def isomorphism_key(self, arch: Mapping[str, str]) -> str:
        """A string that two archs share iff NAS-Bench-201 counts them as isomorphic cells.

        The benchmark's rule: node ``i`` is the sorted ``+``-join of one term per incoming edge;
        ``skip_connect`` passes its source's expression through, another op gives ``(source)@op``, and
        ``none`` gives the zero term ``#`` (so does any op whose source is the single term ``#``). Zero terms
        stay in the sum, so only a one-input node that is zero propagates as zero. This rule yields the
        6,466 classes the NAS-Bench-201 paper reports for its 15,625 archs.
        """
        return _isomorphism_key(self.validate(arch))

    @cached_property
    def _representatives(self) -> dict[str, Arch]:
        reps: dict[str, Arch] = {}
        names = [edge_name(i, j) for i, j in EDGES]
        for options in itertools.product(OPS, repeat=len(EDGES)):  # the full space, even when restricted
            arch = Arch(dict(zip(names, options)))
            reps.setdefault(_isomorphism_key(arch), arch)
        return reps

    @property
    def structure_feature_scales(self) -> dict[str, float]:
        """:data:`CELL_FEATURES`: the GRAF-style features of :func:`cell_features` and their largest values."""
        return dict(CELL_FEATURES)

    def structure_features(self, arch: Mapping[str, str]) -> dict[str, float]:
        return cell_features(arch)

    def canonical(self, arch: Mapping[str, str]) -> Arch:
        """The first arch (in enumeration order) of ``arch`` 's isomorphism class."""
        return self._representatives[self.isomorphism_key(arch)]

    # -- networks --------------------------------------------------------------------------------------
    def _network(self, network_cls: type[NB201Network], make_edge: Callable[[str, int], nn.Module]) -> NB201Network:
        cfg = self.config

        def make_cell(channels: int) -> nn.Module:
            return NB201Cell({edge_name(i, j): make_edge(edge_name(i, j), channels) for i, j in EDGES})

        return network_cls(
            make_cell, cfg.channels, cfg.cells_per_stage, self.data.in_channels, self.data.num_classes, cfg.bn_affine
        )

    def build_supernet(self) -> NB201Supernet:
        affine = self.config.bn_affine
        supernet = self._network(
            NB201Supernet,
            lambda name, c: OpChoice(name, {op: make_op(op, c, affine) for op in OPS}),
        )
        assert isinstance(supernet, NB201Supernet)
        return supernet

    def build_subnet(self, arch: Mapping[str, str]) -> NB201Network:
        arch = self.validate(arch)
        affine = self.config.bn_affine
        return self._network(NB201Network, lambda name, c: make_op(arch[name], c, affine))
