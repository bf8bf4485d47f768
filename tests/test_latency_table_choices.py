"""Latency tables over an adapter's table choices: for spaces whose latency is not additive in their own
choices (a block's cost depends on its kernel and expand ratio together, and on whether the depth reaches it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nasframe.core.choice import Choice
from nasframe.core.space import SearchSpace
from nasframe.hardware.lut import MeasureSettings, OpInstance, build_lut
from nasframe.hardware.predictor import LatencyPredictor
from nasframe.selection.constraints import load_latency_budget

FAST = MeasureSettings(device="cpu", batch_size=1, warmup=0, repeats=1)


class BlockSpace(SearchSpace):
    """One block with a kernel and a width choice, and a switch that skips it: not additive in these choices."""

    name = "block_toy"

    def _make_choices(self):
        return [Choice("use", ("yes", "no")), Choice("kernel", ("k1", "k3")), Choice("width", ("w2", "w4"))]

    def build_supernet(self):
        raise NotImplementedError

    def build_subnet(self, arch):
        raise NotImplementedError

    def latency_adapter(self):
        return BlockAdapter()


class BlockAdapter:
    """Table choice ``block`` with options ``skipped`` or ``<kernel>_<width>``."""

    def table_choices(self):
        return [Choice("block", ("skipped", "k1_w2", "k1_w4", "k3_w2", "k3_w4"))]

    def table_arch(self, arch):
        return {"block": "skipped" if arch["use"] == "no" else f"{arch['kernel']}_{arch['width']}"}

    def option_instances(self, choice, option):
        assert choice == "block"
        if option == "skipped":
            return []
        kernel, width = int(option[1]), int(option.split("_w")[1])
        return [OpInstance(f"block/{option}", f"conv{kernel}x{width}",
                           lambda: nn.Conv2d(1, width, kernel, padding=kernel // 2), (1, 8, 8))]

    def fixed_instances(self):
        return [OpInstance("head", "head", lambda: nn.Flatten(), (1, 8, 8))]

    def input_shape(self):
        return (1, 8, 8)

    def build_network(self, arch):
        raise NotImplementedError


def test_the_table_has_terms_for_the_table_choices_and_maps_space_archs():
    space = BlockSpace()
    table = build_lut(space, space.latency_adapter(), FAST)
    assert table.encoder.columns == tuple(("block", o) for o in ("skipped", "k1_w2", "k1_w4", "k3_w2", "k3_w4"))
    assert table.term_ms("block", "skipped") == 0.0
    measured = {e["option"] for e in table.details["entries"] if e["choice"] == "block"}
    assert measured == {"k1_w2", "k1_w4", "k3_w2", "k3_w4"}
    archs = [{"use": "yes", "kernel": "k3", "width": "w4"}, {"use": "no", "kernel": "k3", "width": "w4"}]
    expected = [table.fixed_ms + table.term_ms("block", "k3_w4"), table.fixed_ms]
    assert table.predict(archs).tolist() == pytest.approx(expected)
    assert table.predict_one(archs[0]) == pytest.approx(expected[0])
    corrected = table.calibrate(archs, np.array([3.0, 1.0]))  # the map survives the correction
    assert corrected.predict(archs).tolist() == pytest.approx([3.0, 1.0])


def test_a_loaded_table_is_rebound_to_the_space_adapter(tmp_path):
    space = BlockSpace()
    choices = space.latency_adapter().table_choices()
    from nasframe.hardware.predictor import PredictorKey

    key = PredictorKey("toy", 1, torch.__version__, space.describe())
    path = LatencyPredictor(choices, np.array([0.0, 1.0, 2.0, 3.0, 4.0]), 0.5, key).save(tmp_path / "t.json")
    budget = load_latency_budget(space, path, max_ms=3.0)
    assert budget.latency({"use": "yes", "kernel": "k3", "width": "w2"}) == pytest.approx(3.5)
    assert budget({"use": "no", "kernel": "k3", "width": "w4"})  # skipped: 0.5 ms
    assert not budget({"use": "yes", "kernel": "k3", "width": "w4"})  # 4.5 ms
