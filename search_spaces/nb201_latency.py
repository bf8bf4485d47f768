"""The NAS-Bench-201 latency adapter: which op runs where, in which input shape (for the lookup table).

Every edge of every cell is a place of its choice: ``edge_i_j`` with option ``op`` runs ``op`` in each of the
``cells_per_stage`` cells of each of the 3 stages, on that stage's feature map (C x H x W, then 2C x H/2 x W/2,
then 4C x H/4 x W/4). Labels are the module paths in the standalone network (``cells.3.edges.edge_2_1``). The
``none`` option is skipped by the cell and costs nothing (no place). All edges of one stage see the same shape,
so an op is measured once per stage (the places share a key). The fixed part is the stem, the two residual
reduction blocks and the head (BN-ReLU, global average pooling, classifier).

Stated simplification: each op is measured alone; the additions that join a node's inputs, the zeros of a node
whose edges are all ``none``, and effects between consecutive ops are not table entries. The predictor's fitted
affine correction absorbs their average cost.

Shapes are not derived by hand: they are read with forward pre-hooks from a network of the space run on the
meta device (no memory, no compute), so they follow whatever the skeleton does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from nasframe.errors import InvalidArchError
from nasframe.hardware.lut import OpInstance
from search_spaces.nb201 import EDGES, NB201Cell, NB201Network, NB201Space, ResidualReduction, edge_name, make_op

#: the arch used to probe shapes and to take the fixed modules from (any arch has the same skeleton)
_PROBE_OPTION = "skip_connect"


class NB201Head(nn.Module):
    """The network's end: BN-ReLU, global average pooling, linear classifier (as in NB201Network.forward)."""

    def __init__(self, head: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.head, self.classifier = head, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(x).mean(dim=(2, 3)))


class NB201LatencyAdapter:
    """Places of every (edge, op) and the fixed modules of an :class:`NB201Space` network."""

    def __init__(self, space: NB201Space) -> None:
        self.space = space
        self._probe_arch = {edge_name(i, j): _PROBE_OPTION for i, j in EDGES}
        self._shapes = self._probe_input_shapes()
        with torch.device("meta"):
            #: (index in ``cells``, module class) of the skeleton: cells and reduction blocks
            self._positions = [(k, type(child)) for k, child in enumerate(self._skeleton().cells)]

    def _skeleton(self) -> NB201Network:
        return self.space.build_subnet(self._probe_arch)

    def _probe_input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample input shape of the stem, of every child of ``cells`` and of the head, by module path."""
        with torch.device("meta"):
            network = self._skeleton()
        shapes: dict[str, tuple[int, ...]] = {}
        watched = {"stem": network.stem, "head": network.head}
        watched.update({f"cells.{k}": child for k, child in enumerate(network.cells)})
        handles = [
            module.register_forward_pre_hook(lambda _m, args, name=name: shapes.__setitem__(name, tuple(args[0].shape[1:])))
            for name, module in watched.items()
        ]
        try:
            network(torch.empty((1, *self.input_shape()), device="meta"))
        finally:
            for handle in handles:
                handle.remove()
        return shapes

    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.space.data.input_shape)

    def option_instances(self, choice: str, option: str) -> list[OpInstance]:
        self.space.choice(choice)  # a clear error for an unknown choice
        if option not in self.space.choice(choice).options:
            raise InvalidArchError(f"choice '{choice}' has no option '{option}'")
        if option == self.space.zero_option:
            return []
        affine = self.space.config.bn_affine
        out = []
        for k, kind in self._positions:
            if not issubclass(kind, NB201Cell):
                continue
            shape = self._shapes[f"cells.{k}"]
            out.append(OpInstance(
                label=f"cells.{k}.edges.{choice}", key=f"{option}@{'x'.join(map(str, shape))}",
                build=_op_builder(option, shape[0], affine), input_shape=shape,
            ))
        return out

    def fixed_instances(self) -> list[OpInstance]:
        def from_skeleton(pick: Callable[[NB201Network], nn.Module]) -> Callable[[], nn.Module]:
            return lambda: pick(self._skeleton())

        shape = "x".join(map(str, self.input_shape()))
        out = [OpInstance("stem", f"stem@{shape}", from_skeleton(lambda n: n.stem), self._shapes["stem"])]
        for k, kind in self._positions:
            if issubclass(kind, ResidualReduction):
                s = self._shapes[f"cells.{k}"]
                out.append(OpInstance(
                    f"cells.{k}", f"reduction@{'x'.join(map(str, s))}",
                    from_skeleton(lambda n, k=k: n.cells[k]), s,
                ))
        s = self._shapes["head"]
        out.append(OpInstance(
            "head+classifier", f"head@{'x'.join(map(str, s))}",
            from_skeleton(lambda n: NB201Head(n.head, n.classifier)), s,
        ))
        return out

    def build_network(self, arch: Mapping[str, str]) -> nn.Module:
        return self.space.build_subnet(arch)


def _op_builder(option: str, channels: int, affine: bool) -> Callable[[], nn.Module]:
    return lambda: make_op(option, channels, affine)


def latency_adapter(space: NB201Space) -> NB201LatencyAdapter:
    """Found by :func:`nasframe.hardware.lut.find_adapter` (module named ``<space module>_latency``)."""
    return NB201LatencyAdapter(space)
