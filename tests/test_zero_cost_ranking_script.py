"""scripts/zero_cost_ranking.py at toy scale: worker processes score the values one process scores, in its order."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nasframe.core.space import DataSpec
from nasframe.data.base import TensorSplit
from search_spaces.nb201 import NB201Space


def test_the_ranking_script_scores_the_same_values_in_worker_processes(load_script, monkeypatch, tmp_path):
    ranking = load_script("zero_cost_ranking")
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)
    train = TensorSplit(torch.randn(128, 3, 8, 8, generator=torch.Generator().manual_seed(0)),
                        torch.randint(0, 10, (128,), generator=torch.Generator().manual_seed(1)))
    cells = [space.parse(a) for a in sorted({space.format(space.sample(np.random.default_rng(s))) for s in range(12)})]
    truths = {t: np.random.default_rng(2).uniform(50, 95, len(cells)) for t in ranking.TRUTHS}
    data = SimpleNamespace(train=train, prepare=None, summary=lambda: "random 8x8 images")
    target = ranking.Target("nb201", space, cells, truths, data, space.build_subnet)
    monkeypatch.setattr(ranking, "TARGETS", {"nb201": lambda device: target})

    def run(out, *extra):
        monkeypatch.setattr(sys, "argv", ["zero_cost_ranking.py", "--proxies", "params", "jacov", "--variants",
                                          "--threads", "1", "--out", str(out), *extra])
        ranking.main()
        return {name: [json.loads(line) for line in (out / f"values_{name}.jsonl").read_text().splitlines()]
                for name in ("params", "jacov")}

    here, there = run(tmp_path / "here"), run(tmp_path / "workers", "--workers", "2")
    classes = len({space.canonical(c) for c in cells})
    for name in ("params", "jacov"):
        assert [r["arch"] for r in there[name]] == [r["arch"] for r in here[name]]  # the same order, each class once
        assert len(there[name]) == classes
        assert [r["values"][name] for r in there[name]] == pytest.approx([r["values"][name] for r in here[name]])
    report = json.loads((tmp_path / "workers" / "zero_cost_nb201.json").read_text())
    assert "2 processes of 1 thread" in report["protocol"]["machine"]
    assert run(tmp_path / "workers", "--workers", "2") == there  # nothing left to score: nothing appended
