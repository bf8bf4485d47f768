"""A MobileNetV3-style elastic search space (Once-for-All / BigNAS), scaled for CIFAR-size inputs.

The macro layout is MobileNetV3-Large's ("Searching for MobileNetV3", Howard et al., ICCV 2019) as the
Once-for-All supernet uses it ("Once-for-All: Train One Network and Specialize it for Efficient Deployment",
Cai et al., ICLR 2020):

* stem: 3x3 conv, BatchNorm, hard-swish (16 channels);
* a fixed depthwise-separable block: 3x3 depthwise conv, BN, ReLU, 1x1 projection, BN (16 channels, residual);
* 5 stages of inverted residual blocks (1x1 expand, BN, act, kxk depthwise, BN, act, [squeeze-excite],
  1x1 project, BN, residual when the shape allows) with 24, 40, 80, 112, 160 channels; squeeze-excite in stages
  2, 4 and 5 and hard-swish in stages 3, 4 and 5, ReLU before (MobileNetV3-Large's numbering);
* head: 1x1 conv to 6x the last width (960), BN, hard-swish, global average pooling, 1x1 conv to 1280 (no BN),
  hard-swish, dropout, linear classifier.

Choices (all with numeric option names, listed from small to large, so the space has a smallest and a largest
arch for the sandwich rule): ``stage<s>_depth`` in {2, 3, 4}, and for every block position ``b`` of a stage
``stage<s>_block<b>_kernel`` in {3, 5, 7} (depthwise kernel) and ``stage<s>_block<b>_expand`` in {3, 4, 6}
(expand ratio, relative to the block's input width). Stages and blocks are numbered from 1. Blocks beyond a
stage's depth are skipped, so their kernel and expand choices do not change the network: :meth:`canonical`
sets them to their first option, and :meth:`MobileNetSpace.sample` returns canonical archs (OFA's sampling:
depth, then kernel and expand ratio of the active blocks, each uniform).

Stride schedule: MobileNetV3 downsamples 32x (stem and stages 1, 2, 3, 5 with stride 2) for 224x224 images.
For 32x32 inputs the defaults keep the stem and stage 1 at stride 1 and downsample in stages 2, 3 and 5 (8x
in all): 32x32 -> 32x32 (stem, first block, stage 1) -> 16x16 (stage 2) -> 8x8 (stages 3, 4) -> 4x4 (stage 5).
``stem_stride`` and ``stage_strides`` change it (ImageNet: ``stem_stride=2, stage_strides=[2, 2, 2, 1, 2]``).
Channel counts are multiplied by ``width_mult`` and rounded to multiples of 8, as MobileNetV3 does;
``head_channels`` is taken as given.

Elastic resolution (``resolutions``, off by default; OFA samples 128..224 for 224x224 ImageNet): a choice
``resolution`` whose option resizes the input images (bilinear) before the stem, in the supernet and in the
standalone subnet, so that training draws it per batch and BN recalibration, latency and the export run at it.

Native string: ``d<depth>,<depth>,...|k<kernel>e<expand>,...|...``: the stage depths, then one group per stage
listing its active blocks, e.g. ``d2,3,2,2,2|k3e4,k5e6|k7e3,k3e3,k5e4|...``; with elastic resolution prefixed by
``r<resolution>|`` (``r28|d2,3,...``). It names only active blocks, so it reads back as the canonical arch.

The supernet is built from the elastic layers of :mod:`nasframe.core.elastic` (kernel: centre crop of the 7x7
kernel, optionally OFA's kernel transformation, ``kernel_transform``; expand ratio: the first channels of the
widest block; depth: the first blocks of a stage); the standalone subnet of an arch is the same network of plain
``nn.Conv2d`` / ``nn.BatchNorm2d`` layers with the same module names, so
:func:`~nasframe.export.extract.extract` copies the active slices into it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import List

import numpy as np
import torch
from torch import nn

from nasframe.core.arch import Arch
from nasframe.core.choice import Choice
from nasframe.core.elastic import (
    ElasticBatchNorm2d,
    ElasticChoice,
    ElasticConv2d,
    ElasticDepthwiseConv2d,
    ElasticInputResize,
    ElasticLayer,
    ElasticSequential,
    ElasticSqueezeExcite,
    InputResize,
    SqueezeExcite,
    make_divisible,
)
from nasframe.core.modules import Supernet
from nasframe.core.space import SearchSpace
from nasframe.errors import ConfigError, InvalidArchError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "hswish": nn.Hardswish}
CHANNEL_DIVISOR = 8  # MobileNetV3 / OFA round every width to a multiple of 8
FIRST_BLOCK_KERNEL = 3
RESOLUTION = "resolution"  # the choice of elastic resolution (only with space.resolutions)


def depth_choice(stage: int) -> str:
    """Choice name of the depth of ``stage`` (1-based): ``stage<s>_depth``."""
    return f"stage{stage}_depth"


def kernel_choice(stage: int, block: int) -> str:
    """Choice name of the depthwise kernel of ``block`` (1-based) of ``stage``: ``stage<s>_block<b>_kernel``."""
    return f"stage{stage}_block{block}_kernel"


def expand_choice(stage: int, block: int) -> str:
    """Choice name of the expand ratio of ``block`` of ``stage``: ``stage<s>_block<b>_expand``."""
    return f"stage{stage}_block{block}_expand"


def option_name(value: float) -> str:
    """A numeric option as written in choices and native strings: ``3``, ``6``, ``2.5``."""
    return f"{value:g}"


# --------------------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageLayout:
    """One stage of inverted residual blocks at its largest depth (``number`` counts from 1)."""

    number: int
    c_in: int
    c_out: int
    stride: int
    se: bool
    activation: str
    max_depth: int

    def block_in(self, block: int) -> int:
        """Input width of block ``block`` (0-based): the first block takes the previous stage's width."""
        return self.c_in if block == 0 else self.c_out

    def block_stride(self, block: int) -> int:
        return self.stride if block == 0 else 1

    def mid_width(self, block: int, expand_ratio: float) -> int:
        """Width of the expanded (depthwise) part of block ``block``: OFA's ``make_divisible(round(c_in * e), 8)``."""
        return make_divisible(round(self.block_in(block) * expand_ratio), CHANNEL_DIVISOR)


@dataclass(frozen=True)
class Layout:
    """All widths of the largest network."""

    in_channels: int
    num_classes: int
    stem_channels: int
    stem_stride: int
    stages: tuple[StageLayout, ...]
    final_channels: int
    head_channels: int


# --------------------------------------------------------------------------------------------------------
# Network (shared by supernet and subnet)
# --------------------------------------------------------------------------------------------------------
class ConvBNAct(nn.Module):
    """conv -> BatchNorm -> activation (none for the projection of an inverted residual block)."""

    def __init__(self, conv: nn.Module, bn: nn.Module, act: nn.Module | None = None) -> None:
        super().__init__()
        self.conv, self.bn = conv, bn
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3's block: [1x1 expand] -> kxk depthwise -> [squeeze-excite] -> 1x1 project, plus the input
    when ``residual`` (stride 1 and equal widths)."""

    def __init__(self, expand: nn.Module | None, depthwise: nn.Module, se: nn.Module | None, project: nn.Module,
                 residual: bool) -> None:
        super().__init__()
        self.expand, self.depthwise, self.se, self.project = expand, depthwise, se, project
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return x + out if self.residual else out


class MobileNetV3Network(nn.Module):
    """The input resize (elastic resolution; otherwise none), stem, the fixed first block, the ``stages`` (built by
    the caller: plain or elastic), the head."""

    def __init__(self, layout: Layout, stages: Sequence[nn.Module], make_bn: Callable[[int], nn.Module],
                 dropout: float, resize: nn.Module | None = None) -> None:
        super().__init__()
        self.resize = resize if resize is not None else nn.Identity()
        c = layout.stem_channels
        self.stem = ConvBNAct(nn.Conv2d(layout.in_channels, c, 3, layout.stem_stride, 1, bias=False), make_bn(c),
                              nn.Hardswish())
        self.first_block = InvertedResidual(
            None,
            ConvBNAct(nn.Conv2d(c, c, FIRST_BLOCK_KERNEL, 1, FIRST_BLOCK_KERNEL // 2, groups=c, bias=False),
                      make_bn(c), nn.ReLU()),
            None,
            ConvBNAct(nn.Conv2d(c, c, 1, bias=False), make_bn(c)),
            residual=True,
        )
        self.stages = nn.ModuleList(stages)
        last = layout.stages[-1].c_out
        self.final_expand = ConvBNAct(nn.Conv2d(last, layout.final_channels, 1, bias=False),
                                      make_bn(layout.final_channels), nn.Hardswish())
        self.feature_mix = nn.Sequential(nn.Conv2d(layout.final_channels, layout.head_channels, 1, bias=False),
                                         nn.Hardswish())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(layout.head_channels, layout.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_block(self.stem(self.resize(x)))
        for stage in self.stages:
            x = stage(x)
        x = self.final_expand(x).mean((2, 3), keepdim=True)
        return self.classifier(self.dropout(self.feature_mix(x).flatten(1)))


class MobileNetSupernet(MobileNetV3Network, Supernet):
    """The elastic supernet: every stage an :class:`ElasticSequential` of elastic blocks, and one
    :class:`ElasticChoice` per choice of the space (in ``elastic_choices``) that sets the layers' active sizes."""

    def __init__(self, layout: Layout, stages: Sequence[ElasticSequential], make_bn: Callable[[int], nn.Module],
                 dropout: float, bindings: Sequence[ElasticChoice], resize: ElasticInputResize | None = None) -> None:
        super().__init__(layout, stages, make_bn, dropout, resize)
        self.elastic_choices = nn.ModuleDict({b.choice_name: b for b in bindings})

    supports_channel_sorting = True

    def sort_channels(self) -> None:
        """Once-for-All's channel sorting (:func:`search_spaces.mobilenet_sorting.sort_channels`)."""
        from search_spaces.mobilenet_sorting import sort_channels

        sort_channels(self)


# --------------------------------------------------------------------------------------------------------
# Space
# --------------------------------------------------------------------------------------------------------
@dataclass
class MobileNetConfig:
    """Settings of the MobileNetV3 space. Stage lists have one entry per stage (defaults: MobileNetV3-Large's
    five stages, strides for 32x32 inputs). Options are sorted ascending whatever order they are given in."""

    width_mult: float = 1.0
    stem_channels: int = 16  # also the width of the fixed first block
    stem_stride: int = 1  # 2 in MobileNetV3 (224x224)
    stage_channels: List[int] = field(default_factory=lambda: [24, 40, 80, 112, 160])
    stage_strides: List[int] = field(default_factory=lambda: [1, 2, 2, 1, 2])  # [2, 2, 2, 1, 2] for 224x224
    stage_se: List[bool] = field(default_factory=lambda: [False, True, False, True, True])
    stage_activation: List[str] = field(default_factory=lambda: ["relu", "relu", "hswish", "hswish", "hswish"])
    kernel_sizes: List[int] = field(default_factory=lambda: [3, 5, 7])
    expand_ratios: List[float] = field(default_factory=lambda: [3.0, 4.0, 6.0])
    depths: List[int] = field(default_factory=lambda: [2, 3, 4])
    final_expand_ratio: float = 6.0  # the head's 1x1 conv: 6 x the last stage's width (960)
    head_channels: int = 1280
    se_reduction: int = 4
    dropout: float = 0.1  # before the classifier, as OFA
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    kernel_transform: bool = False  # OFA's kernel transformation matrices (supernet only; see ElasticDepthwiseConv2d)
    resolutions: List[int] = field(default_factory=list)  # elastic resolution: the input resized to one of these
    # (a choice `resolution`; OFA: 128..224 in steps of 4 for 224x224 ImageNet); empty: inputs run as they come


_BLOCK_RE = re.compile(r"^k(?P<kernel>\d+)e(?P<expand>\d+(?:\.\d+)?)$")


class MobileNetSpace(SearchSpace):
    """The elastic MobileNetV3 space: per stage a depth, per block position a kernel size and an expand ratio."""

    name = "mobilenet"
    Config = MobileNetConfig
    has_native_string = True
    options_ordered_by_size = True

    # -- configuration ---------------------------------------------------------------------------------
    def _check_config(self) -> None:
        cfg = self.config
        per_stage = {"stage_channels": cfg.stage_channels, "stage_strides": cfg.stage_strides,
                     "stage_se": cfg.stage_se, "stage_activation": cfg.stage_activation}
        lengths = {key: len(value) for key, value in per_stage.items()}
        if len(set(lengths.values())) != 1 or not cfg.stage_channels:
            raise ConfigError(f"space ({self.name}): the stage lists need one entry per stage, equally many; got {lengths}")
        rules = [
            ("width_mult", cfg.width_mult > 0, "must be > 0"),
            ("stem_channels", cfg.stem_channels >= 1, "must be >= 1"),
            ("stem_stride", cfg.stem_stride in (1, 2), "must be 1 or 2"),
            ("stage_channels", all(c >= 1 for c in cfg.stage_channels), "must all be >= 1"),
            ("stage_strides", all(s in (1, 2) for s in cfg.stage_strides), "must all be 1 or 2"),
            ("stage_activation", all(a in ACTIVATIONS for a in cfg.stage_activation),
             f"must each be one of {', '.join(ACTIVATIONS)}"),
            ("kernel_sizes", bool(cfg.kernel_sizes) and all(k >= 1 and k % 2 for k in cfg.kernel_sizes)
             and len(set(cfg.kernel_sizes)) == len(cfg.kernel_sizes), "must be distinct odd sizes (centre crops)"),
            ("expand_ratios", bool(cfg.expand_ratios) and all(e > 0 for e in cfg.expand_ratios)
             and len(set(cfg.expand_ratios)) == len(cfg.expand_ratios), "must be distinct and > 0"),
            ("depths", bool(cfg.depths) and all(d >= 1 for d in cfg.depths) and len(set(cfg.depths)) == len(cfg.depths),
             "must be distinct and >= 1"),
            ("final_expand_ratio", cfg.final_expand_ratio > 0, "must be > 0"),
            ("head_channels", cfg.head_channels >= 1, "must be >= 1"),
            ("se_reduction", cfg.se_reduction >= 1, "must be >= 1"),
            ("dropout", 0.0 <= cfg.dropout < 1.0, "must be in [0, 1)"),
            ("bn_momentum", 0.0 <= cfg.bn_momentum <= 1.0, "must be in [0, 1]"),
            ("bn_eps", cfg.bn_eps > 0, "must be > 0"),
            ("resolutions", all(r >= 1 for r in cfg.resolutions) and len(set(cfg.resolutions)) == len(cfg.resolutions),
             "must be distinct sizes >= 1 (or empty: no elastic resolution)"),
        ]
        for key, ok, rule in rules:
            if not ok:
                raise ConfigError(f"space.{key}: {rule}, got {getattr(cfg, key)!r}")

    @cached_property
    def layout(self) -> Layout:
        """The widths of the largest network, from the settings and the data spec."""
        self._check_config()
        cfg = self.config

        def width(channels: float) -> int:
            return make_divisible(channels * cfg.width_mult, CHANNEL_DIVISOR)

        stem = width(cfg.stem_channels)
        stages, c_in = [], stem
        for k, (c, stride, se, act) in enumerate(zip(cfg.stage_channels, cfg.stage_strides, cfg.stage_se,
                                                     cfg.stage_activation)):
            stage = StageLayout(k + 1, c_in, width(c), stride, bool(se), act, max(cfg.depths))
            stages.append(stage)
            c_in = stage.c_out
        final = make_divisible(c_in * cfg.final_expand_ratio, CHANNEL_DIVISOR)
        return Layout(self.data.in_channels, self.data.num_classes, stem, cfg.stem_stride, tuple(stages), final,
                      cfg.head_channels)

    @property
    def kernel_sizes(self) -> list[int]:
        return sorted(self.config.kernel_sizes)

    @property
    def expand_ratios(self) -> list[float]:
        return sorted(self.config.expand_ratios)

    @property
    def depths(self) -> list[int]:
        return sorted(self.config.depths)

    @property
    def resolutions(self) -> list[int]:
        """The elastic resolutions, ascending (empty: no resolution choice)."""
        return sorted(self.config.resolutions)

    def _make_choices(self) -> Sequence[Choice]:
        kernels = tuple(option_name(k) for k in self.kernel_sizes)
        expands = tuple(option_name(e) for e in self.expand_ratios)
        stages = self.layout.stages  # checks the settings first
        choices = [Choice(RESOLUTION, tuple(option_name(r) for r in self.resolutions))] if self.resolutions else []
        for stage in stages:
            choices.append(Choice(depth_choice(stage.number), tuple(option_name(d) for d in self.depths)))
            for block in range(1, stage.max_depth + 1):
                choices.append(Choice(kernel_choice(stage.number, block), kernels))
                choices.append(Choice(expand_choice(stage.number, block), expands))
        return choices

    # -- skipped blocks --------------------------------------------------------------------------------
    def canonical(self, arch: Mapping[str, str]) -> Arch:
        """``arch`` with the kernel and expand choices of skipped blocks (beyond their stage's depth) at their
        first option: archs that differ only there are the same network and share this representative."""
        arch = self.validate(arch)
        first = {c.name: c.options[0] for c in self.choices}
        out = dict(arch)
        for stage in self.layout.stages:
            for block in range(int(arch[depth_choice(stage.number)]) + 1, stage.max_depth + 1):
                for name in (kernel_choice(stage.number, block), expand_choice(stage.number, block)):
                    out[name] = first[name]
        return Arch(out)

    @property
    def distinct_size(self) -> int:
        """Number of distinct networks (canonical archs): per stage, the sum over its depths ``d`` of the number
        of kernel/expand assignments of its first ``d`` blocks."""
        options = {c.name: len(c) for c in self.choices}
        total = options.get(RESOLUTION, 1)
        for stage in self.layout.stages:
            n = stage.number
            per_block = [options[kernel_choice(n, b)] * options[expand_choice(n, b)] for b in range(1, stage.max_depth + 1)]
            total *= sum(math.prod(per_block[: int(d)]) for d in self.choice(depth_choice(n)).options)
        return total

    def sample(self, rng: np.random.Generator) -> Arch:
        """A canonical arch: each choice uniform and independent, then skipped blocks set to their first option
        (depth uniform per stage, kernel and expand ratio uniform per active block, as OFA samples)."""
        return self.canonical(super().sample(rng))

    def mutate(self, arch: Mapping[str, str], rng: np.random.Generator, prob: float = 0.1) -> Arch:
        return self.canonical(super().mutate(arch, rng, prob))

    def crossover(self, first: Mapping[str, str], second: Mapping[str, str], rng: np.random.Generator) -> Arch:
        return self.canonical(super().crossover(first, second, rng))

    # -- native strings --------------------------------------------------------------------------------
    def format(self, arch: Mapping[str, str]) -> str:
        """``d<depths>|<stage 1 blocks>|...``, each active block as ``k<kernel>e<expand>``; with elastic resolution
        prefixed by ``r<resolution>|``."""
        arch = self.validate(arch)
        depths = [arch[depth_choice(s.number)] for s in self.layout.stages]
        groups = [
            ",".join(f"k{arch[kernel_choice(s.number, b)]}e{arch[expand_choice(s.number, b)]}"
                     for b in range(1, int(depth) + 1))
            for s, depth in zip(self.layout.stages, depths)
        ]
        resolution = [f"r{arch[RESOLUTION]}"] if self.resolutions else []
        return "|".join([*resolution, "d" + ",".join(depths), *groups])

    def parse_native(self, text: str) -> Arch:
        """Read ``d2,3,2,4,2|k3e4,k5e6|...`` (depths, then the active blocks of each stage); skipped blocks take
        their first option, so the result is canonical."""
        where = f"invalid MobileNet arch string {text!r}"
        stages = self.layout.stages
        groups = text.split("|")
        resolution = None
        if groups and groups[0].startswith("r"):
            if not self.resolutions:
                raise InvalidArchError(f"{where}: it names a resolution ({groups[0]}), but this space has no elastic "
                                       "resolution (space.resolutions is empty)")
            resolution, groups = groups[0][1:], groups[1:]
            if resolution not in {option_name(r) for r in self.resolutions}:
                raise InvalidArchError(f"{where}: resolution {resolution!r} is not one of "
                                       f"{[option_name(r) for r in self.resolutions]}")
        elif self.resolutions:
            raise InvalidArchError(f"{where}: this space has elastic resolution; start with 'r<resolution>|', one of "
                                   f"{[option_name(r) for r in self.resolutions]}")
        if len(groups) != len(stages) + 1:
            raise InvalidArchError(
                f"{where}: expected {len(stages) + 1} groups joined by '|' (depths, then one per stage), got {len(groups)}"
            )
        if not groups[0].startswith("d"):
            raise InvalidArchError(f"{where}: the first group lists the stage depths, like 'd2,3,4,2,3'")
        depths = groups[0][1:].split(",")
        if len(depths) != len(stages):
            raise InvalidArchError(f"{where}: expected {len(stages)} stage depths, got {len(depths)}")
        first = {c.name: c.options[0] for c in self.choices}
        full = {c.name: c.options for c in self._full_choices}
        assignment: dict[str, str] = dict(first)
        if resolution is not None:
            assignment[RESOLUTION] = resolution
        for stage, depth, group in zip(stages, depths, groups[1:]):
            n = stage.number
            if depth not in full[depth_choice(n)]:
                raise InvalidArchError(f"{where}: stage {n} depth {depth!r} is not one of {list(full[depth_choice(n)])}")
            assignment[depth_choice(n)] = depth
            blocks = group.split(",")
            if len(blocks) != int(depth):
                raise InvalidArchError(f"{where}: stage {n} has depth {depth} but lists {len(blocks)} blocks ({group!r})")
            for b, token in enumerate(blocks, start=1):
                match = _BLOCK_RE.match(token)
                if not match:
                    raise InvalidArchError(f"{where}: stage {n} block {b} is {token!r}; a block reads like 'k5e4'")
                for part, name in (("kernel", kernel_choice(n, b)), ("expand", expand_choice(n, b))):
                    value = match.group(part)
                    if value not in full[name]:
                        raise InvalidArchError(
                            f"{where}: stage {n} block {b}: {part} {value} is not one of {list(full[name])}"
                        )
                    assignment[name] = value
        return self.validate(Arch({c.name: assignment[c.name] for c in self.choices}))

    # -- networks --------------------------------------------------------------------------------------
    def _bn(self, channels: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, eps=self.config.bn_eps, momentum=self.config.bn_momentum)

    def _elastic_bn(self, channels: int) -> ElasticBatchNorm2d:
        return ElasticBatchNorm2d(channels, eps=self.config.bn_eps, momentum=self.config.bn_momentum)

    def static_block(self, stage: StageLayout, block: int, kernel: int, expand_ratio: float) -> InvertedResidual:
        """The standalone inverted residual block at position ``block`` (0-based) of ``stage``."""
        c_in, c_out, stride = stage.block_in(block), stage.c_out, stage.block_stride(block)
        mid = stage.mid_width(block, expand_ratio)
        act = ACTIVATIONS[stage.activation]
        return InvertedResidual(
            ConvBNAct(nn.Conv2d(c_in, mid, 1, bias=False), self._bn(mid), act()),
            ConvBNAct(nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False), self._bn(mid), act()),
            SqueezeExcite(mid, self.config.se_reduction, CHANNEL_DIVISOR) if stage.se else None,
            ConvBNAct(nn.Conv2d(mid, c_out, 1, bias=False), self._bn(c_out)),
            residual=stride == 1 and c_in == c_out,
        )

    def _elastic_block(self, stage: StageLayout, block: int) -> InvertedResidual:
        c_in, c_out, stride = stage.block_in(block), stage.c_out, stage.block_stride(block)
        mid = stage.mid_width(block, self.expand_ratios[-1])
        act = ACTIVATIONS[stage.activation]
        return InvertedResidual(
            ConvBNAct(ElasticConv2d(c_in, mid), self._elastic_bn(mid), act()),
            ConvBNAct(ElasticDepthwiseConv2d(mid, self.kernel_sizes, stride, self.config.kernel_transform),
                      self._elastic_bn(mid), act()),
            ElasticSqueezeExcite(mid, self.config.se_reduction, CHANNEL_DIVISOR) if stage.se else None,
            ConvBNAct(ElasticConv2d(mid, c_out), self._bn(c_out)),
            residual=stride == 1 and c_in == c_out,
        )

    def _bindings(self, stage: StageLayout, blocks: ElasticSequential) -> list[ElasticChoice]:
        """The elastic choices of one stage: its depth, and each block's kernel and expand ratio."""
        n = stage.number
        bindings = [ElasticChoice(depth_choice(n), {option_name(d): d for d in self.depths}, [(blocks, "active_depth")])]
        for b, block in enumerate(blocks, start=1):
            widths = {option_name(e): stage.mid_width(b - 1, e) for e in self.expand_ratios}
            targets: list[tuple[ElasticLayer, str]] = [
                (block.expand.conv, "active_out"), (block.expand.bn, "active_features"),
                (block.depthwise.conv, "active_channels"), (block.depthwise.bn, "active_features"),
                (block.project.conv, "active_in"),
            ]
            if block.se is not None:
                targets.append((block.se, "active_channels"))
            bindings.append(ElasticChoice(kernel_choice(n, b), {option_name(k): k for k in self.kernel_sizes},
                                          [(block.depthwise.conv, "active_kernel")]))
            bindings.append(ElasticChoice(expand_choice(n, b), widths, targets))
        return bindings

    def build_supernet(self) -> MobileNetSupernet:
        layout = self.layout
        stages = [ElasticSequential(*(self._elastic_block(s, b) for b in range(s.max_depth))) for s in layout.stages]
        bindings = [binding for s, blocks in zip(layout.stages, stages) for binding in self._bindings(s, blocks)]
        resize = None
        if self.resolutions:
            resize = ElasticInputResize(self.resolutions)
            bindings.insert(0, ElasticChoice(RESOLUTION, {option_name(r): r for r in self.resolutions},
                                             [(resize, "active_resolution")]))
        return MobileNetSupernet(layout, stages, self._bn, self.config.dropout, bindings, resize)

    def build_subnet(self, arch: Mapping[str, str]) -> MobileNetV3Network:
        arch = self.validate(arch)
        stages = []
        for s in self.layout.stages:
            depth = int(arch[depth_choice(s.number)])
            stages.append(nn.Sequential(*(
                self.static_block(s, b, int(arch[kernel_choice(s.number, b + 1)]),
                                   float(arch[expand_choice(s.number, b + 1)]))
                for b in range(depth)
            )))
        resize = InputResize(int(arch[RESOLUTION])) if self.resolutions else None
        return MobileNetV3Network(self.layout, stages, self._bn, self.config.dropout, resize)
