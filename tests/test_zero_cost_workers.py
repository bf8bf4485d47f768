"""Zero-cost scoring in forked workers: the calling process records each arch's missing values once, in order."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasframe.core.space import DataSpec
from nasframe.data.base import TensorSplit
from nasframe.evaluation.zero_cost import ZeroCostConfig, ZeroCostEvaluator
from nasframe.evaluation.zero_cost.workers import missing_jobs, score_in_workers
from search_spaces.nb201 import NB201Space

SPACE = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)
TRAIN = TensorSplit(torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(0)),
                    torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1)))
CLASSES = list(dict.fromkeys(SPACE.canonical(SPACE.sample(np.random.default_rng(s))) for s in range(10)))


def evaluators(folder=None) -> dict[str, ZeroCostEvaluator]:
    def one(proxy):
        cache = str(folder / f"{proxy}.jsonl") if folder else None
        return ZeroCostEvaluator(SPACE, SPACE.build_subnet, ZeroCostConfig(proxy=proxy, cache_file=cache),
                                 train=TRAIN)
    return {"params": one("params"), "jacov": one("jacov")}


def cached(folder, name) -> list[str]:
    return [json.loads(line)["arch"] for line in (folder / f"{name}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("workers", [1, 2])  # 1: in this process
def test_workers_record_the_values_one_process_computes_in_the_given_order(tmp_path, workers):
    here = evaluators()
    mine = evaluators(tmp_path)
    taken = score_in_workers(mine, CLASSES, evaluators, workers=workers)
    assert taken == len(CLASSES)
    for name in ("params", "jacov"):
        assert cached(tmp_path, name) == [SPACE.format(c) for c in CLASSES]
        assert [mine[name].values[c][name] for c in CLASSES] == pytest.approx(
            [here[name].component_values(c)[name] for c in CLASSES])
    assert score_in_workers(mine, CLASSES, evaluators, workers=workers) == 0  # nothing missing: nothing recorded again
    assert len(cached(tmp_path, "params")) == len(CLASSES)


def test_only_the_missing_evaluators_are_sent_and_recorded(tmp_path):
    mine = evaluators(tmp_path)
    for c in CLASSES[:4]:
        mine["params"].component_values(c)  # params already knows the first four classes
    jobs = missing_jobs(mine, CLASSES)
    assert jobs[:4] == [(SPACE.format(c), ["jacov"]) for c in CLASSES[:4]]
    assert jobs[4:] == [(SPACE.format(c), ["params", "jacov"]) for c in CLASSES[4:]]
    score_in_workers(mine, CLASSES, evaluators, workers=2)
    assert cached(tmp_path, "params") == [SPACE.format(c) for c in CLASSES]  # each class once: none recomputed
    assert cached(tmp_path, "jacov") == [SPACE.format(c) for c in CLASSES]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stop_leaves_a_prefix_of_the_order_scored(tmp_path, workers):
    mine = evaluators(tmp_path)
    taken = score_in_workers(mine, CLASSES, evaluators, workers=workers, stop_after_s=1e-9)
    assert taken == 1  # the first value that comes back is past the limit
    assert cached(tmp_path, "jacov") == [SPACE.format(CLASSES[0])]
    assert score_in_workers(mine, CLASSES, evaluators, workers=workers) == len(CLASSES) - 1  # the same call continues
    assert cached(tmp_path, "jacov") == [SPACE.format(c) for c in CLASSES]
