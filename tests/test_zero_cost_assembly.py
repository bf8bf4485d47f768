"""scripts/zero_cost_assembly.py on a tiny NB201 space: worker processes score each class once, the main process
keeps their values (a rerun continues), and the report's rankings are the evaluator's combination of them."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nasframe.core.space import DataSpec
from nasframe.data.base import TensorSplit
from nasframe.evaluation.zero_cost.combine import combine_population
from search_spaces.nb201 import NB201Space

PRESET = Path(__file__).resolve().parent.parent / "configs/evaluator/zero_cost_assembly.yaml"


@pytest.fixture
def script(load_script, monkeypatch):
    module = load_script("zero_cost_assembly")
    space = NB201Space(DataSpec(3, (8, 8), 10), channels=4, cells_per_stage=1)
    generator = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.randn(64, 3, 8, 8, generator=generator), torch.randint(0, 10, (64,), generator=generator))
    cells = [space.parse(a) for a in sorted(space.format(space.sample(np.random.default_rng(s))) for s in range(40))]
    rng = np.random.default_rng(1)
    truths = {t: rng.uniform(50, 95, len(cells)) for t in ("cifar10_test", "cifar100_test", "imagenet16_120_test")}
    data = SimpleNamespace(train=train, prepare=None, summary=lambda: "random 8x8 images")
    target = sys.modules["zero_cost_ranking"].Target("nb201", space, cells, truths, data, space.build_subnet)
    monkeypatch.setattr(module, "TARGETS", {"nb201": lambda device: target})
    return module


def run(script, monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["zero_cost_assembly.py", "--evaluator", str(PRESET), *args])
    script.main()


def test_the_comparison_with_paper_settings_matches_values_computed_the_same_way(script):
    target = script.TARGETS["nb201"](None)
    space, rng = target.space, np.random.default_rng(2)
    classes = list(dict.fromkeys(space.canonical(a) for a in target.archs))[:12]
    components = ["params", "synflow", "jacov"]
    values = {k: {c: float(rng.normal()) for c in components} for k in classes}
    evaluator = SimpleNamespace(components=components, values=values, config=SimpleNamespace(combine="log_rank"))
    same = {"params": {k: v["params"] for k, v in values.items()}, "jacov": {k: v["jacov"] for k, v in values.items()},
            "synflow_bn_calibrated": {k: v["synflow"] for k, v in values.items()}}  # the variant's label
    canonical = [space.canonical(a) for a in target.archs]
    rows = script.against_paper_settings(target, canonical, evaluator, same)
    assert [r["method"] for r in rows] == ["the combination", *components] and rows[0]["classes"] == 12
    assert all(r["kendall_tau"] == r["kendall_tau_paper_settings"] for r in rows)
    other = {**same, "jacov": {k: -v for k, v in same["jacov"].items()}}  # reversed jacov: its tau changes sign
    jacov = script.against_paper_settings(target, canonical, evaluator, other)[3]
    assert jacov["kendall_tau_paper_settings"] == pytest.approx(-jacov["kendall_tau"])
    assert script.against_paper_settings(target, canonical, evaluator, {"params": same["params"]}) == []  # a member missing


def test_workers_score_each_class_once_and_the_report_ranks_by_the_combination(script, monkeypatch, tmp_path):
    out = tmp_path / "out"
    run(script, monkeypatch, "--limit", "6", "--workers", "2", "--out", str(out), "--paper-values", str(tmp_path / "none"))
    lines = [json.loads(line) for line in (out / "values.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and len({line["arch"] for line in lines}) == 6
    assert set(lines[0]["values"]) == {"az_expressivity", "az_progressivity", "az_trainability", "params", "synflow",
                                       "jacov"}
    report = json.loads((out / "zero_cost_assembly.json").read_text())
    rows = {r["method"]: r for r in report["rows"]}
    evaluator_row = next(r for m, r in rows.items() if m.startswith("the evaluator"))
    assert evaluator_row["num_classes_scored"] == 6 and not evaluator_row["complete"]
    assert report["protocol"]["evaluator"]["proxies"]["synflow"]["settings"]["bn"] == "calibrated"
    assert report["timing"]["slices"][0]["classes"] == 6 and report["timing"]["slices"][0]["workers"] == 2

    # the evaluator's ranking is its log-rank sum over the scored classes, each class's score on all its cells
    target = script.TARGETS["nb201"](None)
    space = target.space
    by_class = {space.canonical(space.parse(line["arch"])): line["values"] for line in lines}
    members = list(by_class)
    combined = dict(zip(members, combine_population(list(by_class.values()), list(lines[0]["values"]))))
    keep = [i for i, a in enumerate(target.archs) if space.canonical(a) in by_class]
    scores = [combined[space.canonical(target.archs[i])] for i in keep]
    expected = script.ranking_metrics(np.array(scores), target.truths["cifar10_test"][keep])
    assert evaluator_row["kendall_tau"] == pytest.approx(expected["kendall_tau"])
    assert evaluator_row["num_archs"] == len(keep) >= 6

    # the committed snapshot is the gzipped cache; a checkout that has only the snapshot continues from it
    snapshot = (out / "values.jsonl.gz").read_bytes()
    assert gzip.decompress(snapshot) == (out / "values.jsonl").read_bytes()
    (out / "values.jsonl").unlink()

    # a rerun scores only what is missing and adds a slice
    run(script, monkeypatch, "--limit", "8", "--workers", "1", "--out", str(out), "--paper-values", str(tmp_path / "none"))
    assert len((out / "values.jsonl").read_text().splitlines()) == 8
    timing = json.loads((out / "timing.json").read_text())
    assert [s["classes"] for s in timing] == [6, 2]
    assert len(gzip.decompress((out / "values.jsonl.gz").read_bytes()).splitlines()) == 8
    values = sys.modules["zero_cost_ranking"].load_values(out, space)  # read from the plain file or the snapshot
    (out / "values.jsonl").unlink()
    assert sys.modules["zero_cost_ranking"].load_values(out, space) == values and len(values["jacov"]) == 8


def test_a_non_zero_cost_evaluator_file_is_refused(script, monkeypatch, tmp_path):
    learned = tmp_path / "learned.yaml"
    learned.write_text("defaults:\n  - /evaluator_learned_schema\n  - _self_\n")
    with pytest.raises(SystemExit, match="is a learned evaluator"):
        script.load_settings(learned)
    with pytest.raises(SystemExit, match="no such file"):
        script.load_settings(tmp_path / "missing.yaml")


def test_the_ranking_script_snapshots_its_caches_and_continues_from_a_snapshot(script, tmp_path):
    ranking = sys.modules["zero_cost_ranking"]
    cache = tmp_path / "values_params.jsonl"
    cache.write_text('{"arch": "a", "values": {"params": 1.0}}\n')
    ranking.write_snapshot(cache)
    first = (tmp_path / "values_params.jsonl.gz").read_bytes()
    ranking.write_snapshot(cache)
    assert (tmp_path / "values_params.jsonl.gz").read_bytes() == first  # same values, same bytes
    cache.unlink()
    assert ranking.values_files(tmp_path) == {"params": [{"arch": "a", "values": {"params": 1.0}}]}  # from the .gz
    ranking.continue_from_snapshot(cache)  # a checkout with the snapshot only
    assert cache.read_text() == '{"arch": "a", "values": {"params": 1.0}}\n'
    cache.write_text(cache.read_text() + '{"arch": "b", "values": {"params": 2.0}}\n')
    ranking.continue_from_snapshot(cache)  # a cache that exists is never overwritten by an older snapshot
    assert cache.read_text().count("\n") == 2
    ranking.write_snapshot(tmp_path / "absent.jsonl")
    assert not (tmp_path / "absent.jsonl.gz").exists()
