"""The MobileNetV3 latency adapter: table choices per block position, the input shape each block sees, and a
table built on the CPU that predicts an arch as fixed part plus its active blocks (no timing is checked)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasframe.core.space import DataSpec
from nasframe.hardware.lut import MeasureSettings, build_lut, find_adapter, table_choices
from search_spaces.mobilenet import MobileNetSpace, depth_choice, expand_choice, kernel_choice
from search_spaces.mobilenet_latency import SKIPPED, MobileNetLatencyAdapter

TINY = {
    "stem_channels": 8, "stage_channels": [8, 16], "stage_strides": [1, 2], "stage_se": [False, True],
    "stage_activation": ["relu", "hswish"], "head_channels": 32, "dropout": 0.0,
    "kernel_sizes": [3, 5], "expand_ratios": [3, 6], "depths": [1, 2],
}
FAST = MeasureSettings(device="cpu", batch_size=1, warmup=0, repeats=1)


@pytest.fixture(scope="module")
def space() -> MobileNetSpace:
    return MobileNetSpace(DataSpec(3, (9, 9), 10), **TINY)


def test_the_adapter_is_found_beside_the_space(space):
    assert isinstance(find_adapter(space), MobileNetLatencyAdapter)


def test_table_choices_are_block_positions_skippable_beyond_the_smallest_depth(space):
    adapter = MobileNetLatencyAdapter(space)
    choices = {c.name: c.options for c in table_choices(space, adapter)}
    configs = ("k3_e3", "k3_e6", "k5_e3", "k5_e6")
    assert choices == {"stage1_block1": configs, "stage1_block2": (SKIPPED, *configs),
                       "stage2_block1": configs, "stage2_block2": (SKIPPED, *configs)}
    arch = dict(space.largest())
    arch[depth_choice(2)] = "1"
    arch[kernel_choice(1, 2)], arch[expand_choice(1, 2)] = "5", "3"
    mapped = adapter.table_arch(arch)
    assert mapped == {"stage1_block1": "k5_e6", "stage1_block2": "k5_e3", "stage2_block1": "k5_e6",
                      "stage2_block2": SKIPPED}


def test_each_block_is_measured_in_the_input_shape_it_sees_in_the_network(space):
    adapter = MobileNetLatencyAdapter(space)
    network = space.build_subnet(space.largest())
    seen = {}

    def recorder(name):
        def hook(_module, args):  # returns None: the inputs pass unchanged
            seen[name] = tuple(args[0].shape[1:])
        return hook

    hooks = [block.register_forward_pre_hook(recorder(f"{s}.{b}"))
             for s, stage in enumerate(network.stages) for b, block in enumerate(stage)]
    hooks.append(network.final_expand.register_forward_pre_hook(recorder("head")))
    network.eval()(torch.zeros(1, *adapter.input_shape()))
    for hook in hooks:
        hook.remove()
    for choice in table_choices(space, adapter):
        for option in choice.options:
            instances = adapter.option_instances(choice.name, option)
            if option == SKIPPED:
                assert instances == []
                continue
            (instance,) = instances
            assert tuple(seen[instance.label.removeprefix("stages.")]) == instance.input_shape
            block = instance.build()
            assert block(torch.zeros(2, *instance.input_shape)).shape[0] == 2
    head = next(i for i in adapter.fixed_instances() if i.label == "head")
    assert tuple(seen["head"]) == head.input_shape
    # the measured block is the subnet's block for that configuration (same parameter count)
    (instance,) = adapter.option_instances("stage2_block1", "k5_e6")
    assert sum(p.numel() for p in instance.build().parameters()) == sum(p.numel() for p in network.stages[1][0].parameters())


def test_a_cpu_table_predicts_fixed_part_plus_active_blocks(space):
    adapter = MobileNetLatencyAdapter(space)
    table = build_lut(space, adapter, FAST)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(6)]
    for arch, predicted in zip(archs, table.predict(archs)):
        mapped = adapter.table_arch(arch)
        expected = table.fixed_ms + sum(table.term_ms(c, o) for c, o in mapped.items())
        assert predicted == pytest.approx(expected)
    keys = {e["key"] for e in table.details["entries"] if e["choice"]}
    assert table.details["distinct_measurements"] == len(keys) + 3  # blocks 2.. share shapes; + stem, first, head


def test_the_accuracy_protocol_runs_on_table_choices(space):
    """`nasframe latency`'s protocol with a table over table choices and a ridge fit over the space's choices."""
    from nasframe.hardware.evaluate import evaluate_on_device

    adapter = MobileNetLatencyAdapter(space)
    predictor, report = evaluate_on_device(space, adapter, FAST, FAST, fit=3, held_out=3, population=1000,
                                           log=lambda line: None)
    assert set(report["held_out_metrics"]) == {"table sum", "table + affine correction", "additive fit without table"}
    assert len(report["archs"]) == 6 and predictor.encoder.arch_map is not None


def test_with_elastic_resolution_each_resolution_has_its_own_shapes_and_fixed_part():
    """Elastic resolution: the table's `resolution` option holds the resize, stem, first block and head at that
    resolution, and block options carry the resolution, in the shapes the network sees at it."""
    space = MobileNetSpace(DataSpec(3, (9, 9), 10), **{**TINY, "resolutions": [5, 9]})
    adapter = MobileNetLatencyAdapter(space)
    choices = {c.name: c.options for c in table_choices(space, adapter)}
    assert choices["resolution"] == ("r5", "r9")
    assert "r5_k3_e3" in choices["stage1_block1"] and SKIPPED in choices["stage1_block2"]
    assert adapter.fixed_instances() == []
    arch = dict(space.smallest())
    assert adapter.table_arch(arch)["resolution"] == "r5" and adapter.table_arch(arch)["stage1_block1"] == "r5_k3_e3"
    network = space.build_subnet(arch).eval()
    seen = {}
    hooks = [network.stages[1][0].register_forward_pre_hook(lambda _m, args: seen.update(block=args[0].shape[1:])),
             network.final_expand.register_forward_pre_hook(lambda _m, args: seen.update(head=args[0].shape[1:]))]
    network(torch.zeros(1, *adapter.input_shape()))
    for hook in hooks:
        hook.remove()
    (block,) = adapter.option_instances("stage2_block1", "r5_k3_e3")
    assert tuple(seen["block"]) == block.input_shape
    parts = {i.label: i for i in adapter.option_instances("resolution", "r5")}
    assert set(parts) == {"resize", "stem", "first_block", "head"}
    assert parts["resize"].input_shape == (3, 9, 9) and parts["stem"].input_shape == (3, 5, 5)
    assert tuple(seen["head"]) == parts["head"].input_shape
    table = build_lut(space, adapter, FAST)
    assert table.predict([arch])[0] == pytest.approx(sum(table.term_ms(c, o) for c, o in adapter.table_arch(arch).items()))
