"""scripts/zero_cost_gaps.py at toy scale: each check scores what it says, against the table's values on the same
cells; ZiCo with accumulated gradients is the official script's computation; a replacement proxy never shares the
registered one's cache."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from nasframe.core.space import DataSpec
from nasframe.data.base import TensorSplit
from nasframe.errors import ConfigError
from nasframe.evaluation.ranking import ranking_metrics
from nasframe.evaluation.zero_cost import ZeroCostConfig, ZeroCostEvaluator
from nasframe.evaluation.zero_cost.base import ProxyBatch
from nasframe.evaluation.zero_cost.zico import ZiCo, zico_score
from search_spaces.nb201 import NB201Space

DEAD_CONV = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"  # node 1 feeds nothing


@pytest.fixture
def gaps(load_script, monkeypatch):
    module = load_script("zero_cost_gaps")
    ranking = sys.modules["zero_cost_ranking"]
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)
    generator = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.randn(128, 3, 8, 8, generator=generator), torch.randint(0, 10, (128,), generator=generator))
    drawn = {space.format(space.sample(np.random.default_rng(s))) for s in range(30)}
    cells = [space.parse(a) for a in sorted(drawn | set(module.SINGLE_OP_CELLS) | {DEAD_CONV})]
    rng = np.random.default_rng(1)
    truths = {t: rng.uniform(50, 95, len(cells)) for t in ranking.TRUTHS}
    data = SimpleNamespace(train=train, prepare=None, summary=lambda: "random 8x8 images")
    target = ranking.Target("nb201", space, cells, truths, data, space.build_subnet)
    monkeypatch.setattr(module, "TARGETS", {"nb201": lambda device: target})
    return module


def write_table(folder, target, proxies=("params", "jacov", "zico")):
    """The ranking script's values files for the toy cells: each proxy at its paper settings, one line a class."""
    folder.mkdir(parents=True, exist_ok=True)
    for proxy in proxies:
        evaluator = ZeroCostEvaluator(target.space, target.build_network,
                                      ZeroCostConfig(proxy=proxy, cache_file=str(folder / f"values_{proxy}.jsonl")),
                                      train=target.data.train)
        for cell in target.archs:
            evaluator.component_values(cell)


def test_checks_rescore_the_sample_their_way_and_compare_with_the_table(gaps, monkeypatch, tmp_path):
    target = gaps.TARGETS["nb201"](None)
    table, out, cache = tmp_path / "table", tmp_path / "out", tmp_path / "cache"
    write_table(table, target)
    checks = ["params_every_op", "jacov_kaiming_32", "zico_accumulated", "jacov_without_single_op_classes",
              "jacov_classes_once"]
    argv = ["zero_cost_gaps.py", "--checks", *checks, "--sample", "12", "--table", str(table), "--cache", str(cache),
            "--out", str(out), "--threads", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    gaps.main()
    report = json.loads((out / "zero_cost_gaps.json").read_text())
    rows = {r["method"]: r for r in report["rows"]}
    assert list(rows) == checks and report["protocol"]["sample"] == {"cells": 12, "classes": pytest.approx(12, abs=3),
                                                                       "seed": 1}
    for row in rows.values():
        assert row["difference"] == pytest.approx(row["kendall_tau"] - row["ours_kendall_tau"])
    assert "| params_every_op |" in (out / "zero_cost_gaps.md").read_text()

    # every op of the cell string counts: a cell with a dead 3x3 convolution has more parameters than its class's
    # canonical network, which the table counts
    space = target.space
    raw = json.loads(next(line for line in (cache / "values_params_every_op.jsonl").read_text().splitlines()
                          if json.loads(line)["arch"] == DEAD_CONV))["values"]["params"]
    canonical = ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy="params"))(space.parse(DEAD_CONV))
    assert raw > canonical
    assert rows["params_every_op"]["num_archs"] == len(target.archs)  # scope: all cells

    # the sample check's values are the evaluator's at the changed settings, on the sampled cells
    sample = [target.archs[i] for i in sorted(np.random.default_rng(1).choice(len(target.archs), 12, replace=False))]
    direct = ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy="jacov", init="kaiming_fan_in",
                                                                         batch_size=32), train=target.data.train)
    truth = target.truths["cifar10_test"][[target.archs.index(c) for c in sample]]
    expected = ranking_metrics([direct(c) for c in sample], truth)["kendall_tau"]
    assert rows["jacov_kaiming_32"]["kendall_tau"] == pytest.approx(expected)
    assert rows["jacov_kaiming_32"]["num_archs"] == 12 and rows["jacov_kaiming_32"]["seed"] == 1

    # table checks: the two single-op classes are left out, and each class counts once
    single = {space.canonical(space.parse(s)) for s in gaps.SINGLE_OP_CELLS}
    left = sum(space.canonical(c) in single for c in target.archs)
    assert left >= 2 and rows["jacov_without_single_op_classes"]["num_archs"] == len(target.archs) - left
    assert rows["jacov_classes_once"]["num_classes"] == len({space.canonical(c) for c in target.archs})

    # a rerun reads the rescored values back: nothing appended
    before = (cache / "values_jacov_kaiming_32.jsonl").read_text()
    monkeypatch.setattr(sys, "argv", argv[:2] + ["jacov_kaiming_32"] + argv[7:])
    gaps.main()
    assert (cache / "values_jacov_kaiming_32.jsonl").read_text() == before


def test_accumulated_zico_takes_the_second_gradient_without_zeroing(gaps):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 3))
    inputs = [torch.randn(4, 12), torch.randn(4, 12)]
    labels = [torch.tensor([0, 1, 2, 0]), torch.tensor([2, 2, 1, 0])]
    batch = ProxyBatch(inputs=inputs, labels=labels, num_classes=3, input_shape=(12,))
    per_batch = []  # g_1 and g_2 by hand
    for x, y in zip(inputs, labels):
        net.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        per_batch.append([net[1].weight.grad.clone(), net[3].weight.grad.clone()])
    accumulated = [[per_batch[0][i], per_batch[0][i] + per_batch[1][i]] for i in range(2)]
    separate = [[per_batch[0][i], per_batch[1][i]] for i in range(2)]
    assert gaps.ZiCoAccumulated().compute(net, batch)["zico"] == pytest.approx(zico_score(accumulated))
    assert ZiCo().compute(net, batch)["zico"] == pytest.approx(zico_score(separate))
    assert zico_score(accumulated) != pytest.approx(zico_score(separate))


def test_a_replacement_proxy_is_cached_apart_and_must_replace_a_configured_one(gaps, tmp_path):
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)
    train = TensorSplit(torch.randn(128, 3, 8, 8), torch.randint(0, 10, (128,)))
    cache = str(tmp_path / "values.jsonl")
    official = ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy="zico", cache_file=cache), train=train)
    official(space.parse(DEAD_CONV))
    replaced = ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy="zico", cache_file=cache),
                                 train=train, proxies=[gaps.ZiCoAccumulated()])
    assert not replaced.values  # another computation: the registered one's values are not reused
    assert replaced.describe()["proxies"]["zico"]["gradients"].startswith("accumulated")
    with pytest.raises(ConfigError, match="a replacement for zico was given, but it runs only jacov"):
        ZeroCostEvaluator(space, space.build_subnet, ZeroCostConfig(proxy="jacov"), train=train,
                          proxies=[gaps.ZiCoAccumulated()])

