"""The MobileNetV3 latency adapter: one table term per block position and block configuration.

A block's cost depends on its kernel size and expand ratio together (the depthwise conv runs on the expanded
width), and on whether its stage's depth reaches it at all, so the space's own choices (depth, kernel, expand)
are not additive. As in Once-for-All's lookup table ("Once-for-All: Train One Network and Specialize it for
Efficient Deployment"), the table instead has one *table choice* per block position, ``stage<s>_block<b>``,
with options ``k<kernel>_e<expand>`` and, for positions a stage can skip, ``skipped`` (no cost): an arch's
latency is then the fixed part plus one measured block per active position. Each block is measured alone as a
standalone inverted residual block (expand, depthwise, squeeze-excite, project, residual) in the input shape it
sees in the network; blocks 2..4 of a stage see the same shape and share their measurements. The fixed part is
the stem, the fixed first block and the head (final 1x1 conv, pooling, feature mix, classifier).

With elastic resolution (``space.resolutions``) every shape depends on the arch's resolution: the table then has
a choice ``resolution`` whose options hold the resize, the stem, the first block and the head measured at that
resolution, and the block options carry it, ``r<resolution>_k<kernel>_e<expand>``.

Stated simplification: effects between consecutive blocks (caches, allocator) are not table entries; the
predictor's fitted affine correction absorbs their average.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nasframe.core.choice import Choice
from nasframe.core.elastic import InputResize
from nasframe.hardware.lut import OpInstance
from search_spaces.mobilenet import RESOLUTION, MobileNetSpace, depth_choice, expand_choice, kernel_choice

SKIPPED = "skipped"


def block_choice(stage: int, block: int) -> str:
    """Table choice of block position ``block`` (1-based) of ``stage``: ``stage<s>_block<b>``."""
    return f"stage{stage}_block{block}"


def block_option(kernel: str, expand: str) -> str:
    return f"k{kernel}_e{expand}"


def conv_output_size(size: int, stride: int) -> int:
    """Spatial size after a conv with odd kernel ``k``, padding ``k // 2`` and ``stride``."""
    return (size - 1) // stride + 1


class MobileNetHead(nn.Module):
    """The network's end, as in MobileNetV3Network.forward: final 1x1 conv, pooling, feature mix, classifier."""

    def __init__(self, final_expand: nn.Module, feature_mix: nn.Module, dropout: nn.Module, classifier: nn.Module):
        super().__init__()
        self.final_expand, self.feature_mix, self.dropout, self.classifier = final_expand, feature_mix, dropout, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand(x).mean((2, 3), keepdim=True)
        return self.classifier(self.dropout(self.feature_mix(x).flatten(1)))


class MobileNetLatencyAdapter:
    """Where each block configuration runs, in which input shape (see the module docstring)."""

    def __init__(self, space: MobileNetSpace) -> None:
        self.space = space
        self._stages = {stage.number: stage for stage in space.layout.stages}
        self._min_depth = min(space.depths)
        self._resolutions = [str(r) for r in space.resolutions]

    def _shapes(self, resolution: str | None) -> tuple[tuple[int, int, int], dict[tuple[int, int], tuple[int, int, int]],
                                                        tuple[int, int, int]]:
        """At ``resolution`` (None: the data's input size): the stem's output shape, each block position's input
        shape ``(stage, block 0-based) -> (C, H, W)`` and the head's input shape."""
        layout = self.space.layout
        height, width = self.space.data.input_size if resolution is None else (int(resolution), int(resolution))
        height, width = conv_output_size(height, layout.stem_stride), conv_output_size(width, layout.stem_stride)
        stem_out = (layout.stem_channels, height, width)
        blocks: dict[tuple[int, int], tuple[int, int, int]] = {}
        for stage in layout.stages:
            for block in range(stage.max_depth):
                blocks[(stage.number, block)] = (stage.block_in(block), height, width)
                height, width = (conv_output_size(height, stage.block_stride(block)),
                                 conv_output_size(width, stage.block_stride(block)))
        return stem_out, blocks, (layout.stages[-1].c_out, height, width)

    # -- table choices ---------------------------------------------------------------------------------
    def table_choices(self) -> list[Choice]:
        configs = tuple(block_option(k, e) for k in self._options("kernel") for e in self._options("expand"))
        choices = []
        if self._resolutions:
            choices.append(Choice(RESOLUTION, tuple(f"r{r}" for r in self._resolutions)))
            configs = tuple(f"r{r}_{config}" for r in self._resolutions for config in configs)
        for stage in self.space.layout.stages:
            for block in range(1, stage.max_depth + 1):
                skippable = (SKIPPED,) if block > self._min_depth else ()
                choices.append(Choice(block_choice(stage.number, block), skippable + configs))
        return choices

    def _options(self, kind: str) -> tuple[str, ...]:
        first = self.space.layout.stages[0].number
        name = kernel_choice(first, 1) if kind == "kernel" else expand_choice(first, 1)
        return self.space.choice(name).options

    def table_arch(self, arch: Mapping[str, str]) -> dict[str, str]:
        out = {}
        prefix = ""
        if self._resolutions:
            out[RESOLUTION] = f"r{arch[RESOLUTION]}"
            prefix = f"r{arch[RESOLUTION]}_"
        for stage in self.space.layout.stages:
            n = stage.number
            depth = int(arch[depth_choice(n)])
            for block in range(1, stage.max_depth + 1):
                out[block_choice(n, block)] = (
                    prefix + block_option(arch[kernel_choice(n, block)], arch[expand_choice(n, block)])
                    if block <= depth else SKIPPED
                )
        return out

    # -- measured places -------------------------------------------------------------------------------
    def option_instances(self, choice: str, option: str) -> list[OpInstance]:
        if option == SKIPPED:
            return []
        if choice == RESOLUTION:
            return self._fixed_parts(option.removeprefix("r"))
        resolution = None
        if self._resolutions:  # r<resolution>_k<kernel>_e<expand>
            resolution, option = option.removeprefix("r").split("_", 1)
        stage_text, block_text = choice.removeprefix("stage").split("_block")
        stage, block = self._stages[int(stage_text)], int(block_text) - 1
        kernel_text, expand_text = option.removeprefix("k").split("_e")
        kernel, expand = int(kernel_text), float(expand_text)
        shape = self._shapes(resolution)[1][(stage.number, block)]
        key = (f"block/in{shape[0]}x{shape[1]}x{shape[2]}/out{stage.c_out}/s{stage.block_stride(block)}/"
               f"k{kernel}/e{expand:g}/se{int(stage.se)}/{stage.activation}")
        return [OpInstance(f"stages.{stage.number - 1}.{block}", key,
                           lambda: self.space.static_block(stage, block, kernel, expand), shape)]

    def fixed_instances(self) -> list[OpInstance]:
        """The parts every arch runs: the stem, the first block and the head (with elastic resolution they depend
        on it, and are the options of the table's ``resolution`` choice instead)."""
        return [] if self._resolutions else self._fixed_parts(None)

    def _fixed_parts(self, resolution: str | None) -> list[OpInstance]:
        arch = {c.name: c.options[0] for c in self.space.choices}
        if resolution is not None:
            arch[RESOLUTION] = resolution
        network = self.build_network(self.space.canonical(arch))
        head = MobileNetHead(network.final_expand, network.feature_mix, network.dropout, network.classifier)
        stem_out, _, head_in = self._shapes(resolution)
        size = "" if resolution is None else f"/r{resolution}"
        stem_in = self.input_shape() if resolution is None else (self.space.data.in_channels, int(resolution),
                                                                   int(resolution))
        parts = [
            OpInstance("stem", f"stem{size}", lambda: network.stem, stem_in),
            OpInstance("first_block", f"first_block{size}", lambda: network.first_block, stem_out),
            OpInstance("head", f"head{size}", lambda: head, head_in),
        ]
        if resolution is not None:  # the resize of the input images, from the data's size
            parts.insert(0, OpInstance("resize", f"resize/r{resolution}", lambda: InputResize(int(resolution)),
                                       self.input_shape()))
        return parts

    def input_shape(self) -> tuple[int, ...]:
        return (self.space.data.in_channels, *self.space.data.input_size)

    def build_network(self, arch: Mapping[str, str]) -> nn.Module:
        return self.space.build_subnet(arch)


def latency_adapter(space: MobileNetSpace) -> MobileNetLatencyAdapter:
    return MobileNetLatencyAdapter(space)
