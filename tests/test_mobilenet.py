"""The elastic MobileNetV3 space: elastic layers slice shared weights, the supernet path with kernel transformation,
canonical archs, native strings, a hand count of parameters, and a sandwich search from the CLI (the invariants every
space keeps, supernet path == extracted subnet and export among them: tests/test_space_conformance.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasframe.core.elastic import (
    ElasticBatchNorm2d,
    ElasticChoice,
    ElasticConv2d,
    ElasticDepthwiseConv2d,
    ElasticSequential,
    ElasticSqueezeExcite,
    SqueezeExcite,
)
from nasframe.core.modules import path_state_dict
from nasframe.core.registry import SPACES
from nasframe.core.space import DataSpec
from nasframe.errors import ConfigError, InvalidArchError
from nasframe.export import extract
from search_spaces.mobilenet import MobileNetSpace, expand_choice, kernel_choice

#: two stages (no SE + ReLU, then SE + hard-swish), the default options {3,5,7} x {3,4,6} x depth {2,3,4}
TINY = {
    "stem_channels": 8, "stage_channels": [8, 16], "stage_strides": [1, 2], "stage_se": [False, True],
    "stage_activation": ["relu", "hswish"], "head_channels": 32, "dropout": 0.0,
}
DIGITS = DataSpec(1, (8, 8), 10)


@pytest.fixture(scope="module")
def space() -> MobileNetSpace:
    return MobileNetSpace(DIGITS, **TINY)


def trained_supernet(space, rng, steps=2):
    """A supernet whose weights and BN statistics moved off their init, so that equality is not trivial."""
    torch.manual_seed(0)
    supernet = space.build_supernet()
    opt = torch.optim.SGD(supernet.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(16, *space.data.input_shape), torch.randint(0, space.data.num_classes, (16,))
    supernet.train()
    for arch in [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(steps))]:
        supernet.set_arch(arch)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(supernet(x), y).backward()
        opt.step()
    return supernet


# -- elastic layers ------------------------------------------------------------------------------------
def test_elastic_kernel_is_the_centre_of_the_largest_kernel():
    torch.manual_seed(0)
    layer = ElasticDepthwiseConv2d(12, (7, 3, 5), stride=2)
    x = torch.randn(2, 12, 9, 9)
    for kernel, start in [(3, 2), (5, 1), (7, 0)]:
        layer.active_kernel, layer.active_channels = kernel, 12
        centre = layer.weight[:, :, start : start + kernel, start : start + kernel]
        assert torch.equal(layer.active_weight(), centre)
        expected = F.conv2d(x, centre, None, 2, kernel // 2, 1, 12)
        assert torch.equal(layer(x), expected)
    layer.active_kernel, layer.active_channels = 5, 7  # first channels, centre crop
    assert torch.equal(layer.active_weight(), layer.weight[:7, :, 1:6, 1:6])
    standalone = layer.standalone()
    standalone.load_state_dict(layer.active_state_dict())
    assert torch.equal(standalone(x[:, :7]), layer(x[:, :7]))


def test_elastic_pointwise_conv_uses_the_first_channels_as_views():
    torch.manual_seed(0)
    layer = ElasticConv2d(8, 16, bias=True)
    layer.active_in, layer.active_out = 5, 7
    x = torch.randn(3, 5, 4, 4)
    assert torch.equal(layer(x), F.conv2d(x, layer.weight[:7, :5], layer.bias[:7]))
    state = layer.active_state_dict("conv.")
    assert state["conv.weight"].shape == (7, 5, 1, 1) and state["conv.bias"].shape == (7,)
    assert state["conv.weight"].data_ptr() == layer.weight.data_ptr()  # a slice, not a copy
    standalone = layer.standalone()
    standalone.load_state_dict(layer.active_state_dict())
    assert torch.equal(standalone(x), layer(x))


def test_elastic_batchnorm_normalises_and_updates_only_the_first_channels():
    torch.manual_seed(0)
    layer = ElasticBatchNorm2d(8)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5), layer.bias.uniform_(-1, 1)
    layer.active_features = 5
    reference = nn.BatchNorm2d(5)
    reference.load_state_dict(layer.active_state_dict())
    x = torch.randn(6, 5, 3, 3) * 2 + 1
    before = layer.running_mean.clone()
    assert torch.allclose(layer(x), reference(x), atol=1e-6)  # training mode: batch statistics
    assert torch.allclose(layer.running_mean[:5], reference.running_mean, atol=1e-7)
    assert torch.equal(layer.running_mean[5:], before[5:])  # the inactive channels' statistics stay
    layer.eval(), reference.eval()
    assert torch.allclose(layer(x), reference(x), atol=1e-6)  # eval mode: the sliced running statistics
    layer.train()
    layer.reset_running_stats()
    layer.momentum = None  # BN recalibration: exact cumulative mean
    layer(x)
    layer(x + 1)
    assert torch.allclose(layer.running_mean[:5], x.mean((0, 2, 3)) + 0.5, atol=1e-6)


def test_elastic_squeeze_excite_is_the_standalone_layer_on_the_first_channels():
    torch.manual_seed(0)
    layer = ElasticSqueezeExcite(48)
    layer.active_channels = 24  # hidden width make_divisible(24 // 4, 8) = 8 of the widest 16
    assert (layer.reduce.active_in, layer.reduce.active_out, layer.expand.active_out) == (24, 8, 24)
    standalone = SqueezeExcite(24)
    standalone.load_state_dict(layer.active_state_dict())
    assert torch.equal(standalone.reduce.weight, layer.reduce.weight[:8, :24])
    x = torch.randn(2, 24, 5, 5)
    assert torch.equal(layer(x), standalone(x))


def test_kernel_transformation_matrices_start_as_the_crop_and_then_transform_it():
    torch.manual_seed(0)
    layer = ElasticDepthwiseConv2d(4, (3, 5, 7), kernel_transform=True)
    assert set(layer.transforms) == {"7to5", "5to3"}
    layer.active_kernel = 3
    assert torch.equal(layer.active_weight(), layer.weight[:, :, 2:5, 2:5])  # identity init: the plain crop
    with torch.no_grad():
        layer.transforms["7to5"].copy_(torch.randn(25, 25))
        layer.transforms["5to3"].copy_(torch.randn(9, 9))
    five = (layer.weight[:, :, 1:6, 1:6].reshape(4, 25) @ layer.transforms["7to5"].T).view(4, 1, 5, 5)
    three = (five[:, :, 1:4, 1:4].reshape(4, 9) @ layer.transforms["5to3"].T).view(4, 1, 3, 3)
    assert torch.allclose(layer.active_weight(), three, atol=1e-5)
    assert list(layer.active_state_dict()) == ["weight"]  # the matrices stay in the supernet


def test_elastic_depth_runs_and_exports_only_the_first_blocks():
    blocks = ElasticSequential(*(nn.Linear(3, 3) for _ in range(4)))
    blocks.active_depth = 2
    x = torch.randn(2, 3)
    assert torch.equal(blocks(x), blocks[1](blocks[0](x)))
    assert sorted(blocks.active_state_dict("s.")) == ["s.0.bias", "s.0.weight", "s.1.bias", "s.1.weight"]


def test_elastic_choice_checks_its_values_and_options():
    conv = ElasticDepthwiseConv2d(8, (3, 5))
    with pytest.raises(ConfigError, match="active_kernel cannot be 7; allowed: \\[3, 5\\]"):
        ElasticChoice("k", {"7": 7}, [(conv, "active_kernel")])
    with pytest.raises(ConfigError, match="no elastic size 'kernel'"):
        ElasticChoice("k", {"3": 3}, [(conv, "kernel")])
    with pytest.raises(ConfigError, match="odd"):
        ElasticDepthwiseConv2d(8, (3, 4))
    choice = ElasticChoice("k", {"3": 3, "5": 5}, [(conv, "active_kernel")])
    choice.set_option("3")
    assert conv.active_kernel == 3
    with pytest.raises(InvalidArchError, match="choice 'k' has no option '9'"):
        choice.set_option("9")


# -- the space -------------------------------------------------------------------------------------------
def test_choices_are_named_per_stage_and_block_with_ordered_options(space):
    names = [c.name for c in space.choices]
    assert names[:5] == ["stage1_depth", "stage1_block1_kernel", "stage1_block1_expand", "stage1_block2_kernel",
                         "stage1_block2_expand"]
    assert len(names) == 2 * (1 + 4 * 2)
    assert space.choice("stage2_depth").options == ("2", "3", "4")
    assert (kernel_choice(2, 4), expand_choice(2, 4)) == ("stage2_block4_kernel", "stage2_block4_expand")
    assert space.choice("stage2_block4_kernel").options == ("3", "5", "7")
    assert space.choice("stage2_block4_expand").options == ("3", "4", "6")
    assert space.size == (3 * 9**4) ** 2
    assert space.distinct_size == (9**2 + 9**3 + 9**4) ** 2  # per stage: depth d has 9^d distinct block settings
    assert SPACES.get("mobilenet") is MobileNetSpace


def test_default_layout_is_mobilenetv3_large_with_a_32x32_stride_schedule():
    space = MobileNetSpace(DataSpec(3, (32, 32), 10))
    stages = space.layout.stages
    assert [s.c_out for s in stages] == [24, 40, 80, 112, 160]
    assert [s.number for s in stages if s.se] == [2, 4, 5]
    assert [s.activation for s in stages] == ["relu", "relu", "hswish", "hswish", "hswish"]
    assert space.layout.final_channels == 960 and space.layout.head_channels == 1280
    net = space.build_subnet(space.smallest())
    sizes = []
    net.stages[-1].register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[2:])))
    net.eval()(torch.randn(1, 3, 32, 32))
    assert sizes == [(4, 4)]  # stride 8 in all
    assert len(MobileNetSpace(DataSpec(3, (32, 32), 10), width_mult=0.5).layout.stages) == 5


def test_largest_and_smallest_archs(space):
    largest, smallest = space.largest(), space.smallest()
    assert space.format(largest) == "d4,4|k7e6,k7e6,k7e6,k7e6|k7e6,k7e6,k7e6,k7e6"
    assert space.format(smallest) == "d2,2|k3e3,k3e3|k3e3,k3e3"
    assert space.count_params(smallest) < space.count_params(space.sample(np.random.default_rng(0))) < space.count_params(largest)


def test_canonical_merges_archs_that_differ_only_in_skipped_blocks(space):
    rng = np.random.default_rng(1)
    arch = space.parse("d2,3|k5e4,k7e6|k3e6,k5e3,k7e4")
    twin = arch.replace(stage1_block3_kernel="7", stage1_block4_expand="6", stage2_block4_kernel="5")  # skipped
    other = arch.replace(stage2_block3_kernel="3")  # an active block
    assert space.canonical(twin) == space.canonical(arch) == arch != twin
    assert space.canonical(other) != arch
    supernet = trained_supernet(space, rng).eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        supernet.set_arch(arch)
        out = supernet(x)
        supernet.set_arch(twin)
        assert torch.equal(supernet(x), out)  # the same network
    assert all(space.canonical(a) == a for a in (space.sample(rng) for _ in range(50)))
    assert all(space.canonical(m) == m for m in (space.mutate(arch, rng, prob=0.5) for _ in range(20)))


def test_canonical_classes_count_the_distinct_networks():
    small = MobileNetSpace(DIGITS, **{**TINY, "stage_channels": [8], "stage_strides": [1], "stage_se": [True],
                                      "stage_activation": ["hswish"], "kernel_sizes": [3, 5], "expand_ratios": [3, 6],
                                      "depths": [1, 2]})
    archs = list(small.enumerate())
    assert len(archs) == small.size == 2 * 4 * 4
    assert len({small.canonical(a) for a in archs}) == small.distinct_size == 4 + 4 * 4


def test_native_string_names_the_active_blocks_only(space):
    arch = space.parse("d3,2|k5e4,k7e6,k3e3|k3e6,k5e3")
    assert (arch["stage1_block2_kernel"], arch["stage1_block2_expand"], arch["stage2_block1_expand"]) == ("7", "6", "6")
    non_canonical = arch.replace(stage2_block3_kernel="7")
    assert space.parse(space.format(non_canonical)) == arch  # the string names active blocks only


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("d2,2|k3e3,k3e3", "expected 3 groups joined by '|'"),
        ("2,2|k3e3,k3e3|k3e3,k3e3", "first group lists the stage depths"),
        ("d2|k3e3,k3e3|k3e3,k3e3", "expected 2 stage depths, got 1"),
        ("d5,2|k3e3,k3e3|k3e3,k3e3", "stage 1 depth '5' is not one of \\['2', '3', '4'\\]"),
        ("d3,2|k3e3,k3e3|k3e3,k3e3", "stage 1 has depth 3 but lists 2 blocks"),
        ("d2,2|k3e3,k3x3|k3e3,k3e3", "stage 1 block 2 is 'k3x3'; a block reads like 'k5e4'"),
        ("d2,2|k3e3,k3e3|k3e3,k9e3", "stage 2 block 2: kernel 9 is not one of \\['3', '5', '7'\\]"),
        ("d2,2|k3e3,k3e5|k3e3,k3e3", "stage 1 block 2: expand 5 is not one of \\['3', '4', '6'\\]"),
        ('{"stage1_depth": "2"}', "no option for choice 'stage1_block1_kernel'"),
        ('{"stage1_depth": "2", "stage1_block9_kernel": "3"}', "unknown choice 'stage1_block9_kernel'"),
    ],
)
def test_malformed_strings_raise_clear_errors(space, text, message):
    with pytest.raises(InvalidArchError, match=message):
        space.parse(text)


def test_validate_names_the_bad_choice_and_option(space):
    with pytest.raises(InvalidArchError, match=r"unknown option '5' for choice 'stage1_depth'; options: \['2', '3', '4'\]"):
        space.parse(space.largest().replace(stage1_depth="5").to_json())
    with pytest.raises(InvalidArchError, match="unknown option '6' for choice 'stage2_block3_kernel'"):
        space.validate(space.smallest().replace(stage2_block3_kernel="6"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"stage_strides": [1]}, "one entry per stage"),
        ({"kernel_sizes": [3, 4]}, "space.kernel_sizes: must be distinct odd sizes"),
        ({"stage_activation": ["relu", "gelu"]}, "space.stage_activation: must each be one of relu, hswish"),
        ({"width_mult": 0.0}, "space.width_mult: must be > 0"),
        ({"depths": [2, 2]}, "space.depths: must be distinct"),
        ({"stage_strides": [1, 3]}, "space.stage_strides: must all be 1 or 2"),
        ({"kernel_size": [3]}, "space.kernel_size: unknown key"),
    ],
)
def test_bad_settings_name_the_key(settings, message):
    with pytest.raises(ConfigError, match=message):
        MobileNetSpace.from_config({**TINY, **settings}, where="space", data=DIGITS)


# -- supernet vs subnet ----------------------------------------------------------------------------------
def test_extracted_subnet_equals_the_supernet_path_with_kernel_transformation():
    space = MobileNetSpace(DIGITS, **TINY, kernel_transform=True)
    supernet = trained_supernet(space, np.random.default_rng(4))
    with torch.no_grad():
        for p in supernet.parameters():
            if p.dim() == 2 and p.shape[0] == p.shape[1]:  # the transformation matrices
                p.add_(0.05 * torch.randn_like(p))
    supernet.eval()
    x = torch.randn(4, 1, 8, 8)
    for arch in [space.smallest(), space.sample(np.random.default_rng(5))]:
        subnet = extract(space, supernet, arch)
        with torch.no_grad():
            assert (supernet(x) - subnet(x)).abs().max().item() <= 1e-5


def test_extracted_parameters_match_a_hand_count(space):
    arch = space.parse("d2,2|k3e3,k5e4|k7e6,k3e3")
    bn = lambda c: 2 * c  # noqa: E731 - affine weight and bias
    se = lambda c, mid: c * mid + mid + mid * c + c  # noqa: E731 - two 1x1 convs with bias
    expected = sum([
        1 * 8 * 9 + bn(8),  # stem 3x3 conv 1 -> 8
        8 * 9 + bn(8) + 8 * 8 + bn(8),  # fixed first block: depthwise 3x3, 1x1 projection
        8 * 24 + bn(24) + 24 * 9 + bn(24) + 24 * 8 + bn(8),  # stage 1 block 1: 8 -> 24 (e3), k3, -> 8
        8 * 32 + bn(32) + 32 * 25 + bn(32) + 32 * 8 + bn(8),  # stage 1 block 2: 8 -> 32 (e4), k5, -> 8
        8 * 48 + bn(48) + 48 * 49 + bn(48) + se(48, 16) + 48 * 16 + bn(16),  # stage 2 block 1: e6, k7, SE 48/16
        16 * 48 + bn(48) + 48 * 9 + bn(48) + se(48, 16) + 48 * 16 + bn(16),  # stage 2 block 2: 16 -> 48 (e3), k3
        16 * 96 + bn(96),  # final 1x1 expand to 6 x 16
        96 * 32,  # feature mix 1x1, no BN
        32 * 10 + 10,  # classifier
    ])
    subnet = extract(space, space.build_supernet(), arch)
    assert sum(p.numel() for p in subnet.parameters()) == space.count_params(arch) == expected == 16_674


def test_path_state_dict_slices_without_copies(space):
    supernet = space.build_supernet()
    arch = space.parse("d2,2|k3e3,k5e4|k7e6,k3e3")
    supernet.set_arch(arch)
    state = path_state_dict(supernet)
    assert set(state) == set(space.build_subnet(arch).state_dict())
    full = dict(supernet.named_parameters())
    dw = full["stages.0.0.depthwise.conv.weight"]
    assert state["stages.0.0.depthwise.conv.weight"].shape == (24, 1, 3, 3)
    assert torch.equal(state["stages.0.0.depthwise.conv.weight"], dw[:24, :, 2:5, 2:5])
    assert state["stages.0.1.expand.conv.weight"].data_ptr() == full["stages.0.1.expand.conv.weight"].data_ptr()
    assert not any(k.startswith("stages.0.2.") for k in state)  # a skipped block


# -- end to end --------------------------------------------------------------------------------------------
CLI_TINY = [
    "space=mobilenet", "sampler=sandwich", "sampler.inplace_distillation=true",
    "space.stem_channels=8", "space.stage_channels=[8,16]", "space.stage_strides=[1,2]",
    "space.stage_se=[false,true]", "space.stage_activation=[relu,hswish]", "space.head_channels=16",
    "dataset.valid_fraction=0.2", "dataset.test_fraction=0.7",
    "trainer.epochs=1", "trainer.batch_size=64", "threads=1",
    "selector=random", "selector.num_samples=3", "evaluator.bn_recalibration_batches=1",
]


@pytest.mark.slow  # a subprocess: CLI start-up, one epoch of sandwich training, selection, export
def test_sandwich_search_on_mobilenet_from_the_cli(tmp_path):
    exe = shutil.which("nasframe")
    cmd = [exe] if exe else [sys.executable, "-m", "nasframe.cli"]
    run_dir = tmp_path / "run"
    proc = subprocess.run([*cmd, "search", *CLI_TINY, f"hydra.run.dir={run_dir}"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run_dir / "export/arch.json").read_text())
    space = MobileNetSpace(DataSpec(1, (8, 8), 10), **{k: v for k, v in record["space"]["config"].items()})
    assert space.parse(record["native"]) == space.validate(record["arch"])
    assert record["space"]["name"] == "mobilenet" and "sampler: sandwich" in (run_dir / "report.md").read_text()
    program = torch.export.load(str(run_dir / "export/subnet.pt2")).module()
    assert program(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_data_parallel_training_refuses_batchnorm_without_a_cross_rank_version(space):
    from nasframe.training.distributed import set_cross_rank_batchnorm

    with pytest.raises(ConfigError, match="ElasticBatchNorm2d layers with no cross-rank version"):
        set_cross_rank_batchnorm(space.build_supernet(), True)
    set_cross_rank_batchnorm(space.build_supernet(), False)  # switching off touches nothing


# -- elastic resolution --------------------------------------------------------------------------------
def test_elastic_resolution_is_a_choice_in_the_arch_string_the_subnet_and_the_export(tmp_path):
    """With space.resolutions the arch carries a resolution: the native string starts with it, the supernet path
    and the standalone subnet (and its torch.export program) resize the input to it, and BN recalibration runs
    at it."""
    from nasframe.evaluation.bn import recalibrate_batchnorm

    space = MobileNetSpace(DIGITS, **{**TINY, "resolutions": [8, 4, 6]})
    assert space.choice("resolution").options == ("4", "6", "8")
    assert space.distinct_size == 3 * MobileNetSpace(DIGITS, **TINY).distinct_size
    assert space.smallest()["resolution"] == "4" and space.largest()["resolution"] == "8"
    rng = np.random.default_rng(0)
    supernet = trained_supernet(space, rng)
    x = torch.randn(5, *DIGITS.input_shape)
    for arch in (space.smallest(), space.sample(rng)):
        native = space.format(arch)
        assert native.startswith(f"r{arch['resolution']}|") and space.parse_native(native) == arch
        subnet = extract(space, supernet, arch).eval()
        assert subnet.resize.size == int(arch["resolution"])
        seen = []
        hook = subnet.stem.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[-1]))
        supernet.set_arch(arch)
        assert torch.allclose(supernet.eval()(x), subnet(x), atol=1e-5)
        hook.remove()
        assert seen == [int(arch["resolution"])]
        program = torch.export.export(subnet, (x,))
        assert torch.allclose(program.module()(x), subnet(x), atol=1e-5)
    # BN recalibration sees the arch's resolution: statistics differ between resolutions of the same network
    small = dict(space.largest(), resolution="4")
    stats = []
    for arch in (space.largest(), small):
        supernet.set_arch(arch)
        recalibrate_batchnorm(supernet, [torch.randn(16, *DIGITS.input_shape, generator=torch.Generator().manual_seed(1))])
        stats.append(supernet.stem.bn.running_var.clone())
    assert not torch.allclose(stats[0], stats[1])


@pytest.mark.parametrize("text, message", [
    ("r5|d2,2|k3e3,k3e3|k3e3,k3e3", "resolution '5' is not one of"),
    ("d2,2|k3e3,k3e3|k3e3,k3e3", "start with 'r<resolution>|'"),
])
def test_bad_resolutions_in_arch_strings_name_the_problem(text, message):
    space = MobileNetSpace(DIGITS, **{**TINY, "resolutions": [4, 8]})
    with pytest.raises(InvalidArchError, match=message):
        space.parse_native(text)


def test_a_resolution_in_a_space_without_elastic_resolution_is_refused(space):
    with pytest.raises(InvalidArchError, match="no elastic resolution"):
        space.parse_native("r8|d2,2|k3e3,k3e3|k3e3,k3e3")
    with pytest.raises(ConfigError, match="space.resolutions"):
        MobileNetSpace(DIGITS, **{**TINY, "resolutions": [8, 8]})
