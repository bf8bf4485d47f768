"""scripts/compare_samplers.py on a toy budget (NB201 cells on the digits data): every requested (method, seed)
gets a row from a real search and ranking, and a later invocation reuses the report's rows instead of training
again, so that a long comparison can span sessions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nasframe.data.paths import data_root

ROOT = Path(__file__).resolve().parent.parent
TABLE = data_root() / "nb201" / "accuracy.csv"
TOY = ["dataset=digits", "dataset.train_limit=0", "dataset.valid_limit=0", "space.channels=4", "space.cells_per_stage=1",
       "trainer.epochs=2", "trainer.batch_size=128", "trainer.progress=false", "selector.population_size=4",
       "selector.generations=1", "evaluator.bn_batch_size=64", "threads=2"]

pytestmark = pytest.mark.skipif(not TABLE.is_file(), reason=f"NAS-Bench-201 table not found at {TABLE}")


def _compare(tmp_path: Path, *args: str, overrides: list[str] = TOY) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "scripts" / "compare_samplers.py"), "--experiment", "nb201_cifar10_compare_cpu",
               "--num-archs", "8", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), *args, "--", *overrides]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_rows_for_every_method_and_seed_then_resume_without_training(tmp_path: Path) -> None:
    _compare(tmp_path, "--methods", "uniform", "pada", "--seeds", "0")
    report = json.loads((tmp_path / "out" / "sampler_comparison_nb201_cifar10_compare_cpu.json").read_text())
    assert [(r["method"], r["seed"]) for r in report["rows"]] == [("uniform", 0), ("pada", 0)]
    for row in report["rows"]:
        assert -1 <= row["kendall_tau"] <= 1 and -1 <= row["spearman"] <= 1
        assert 0 < row["found_true"] <= 100 and row["num_archs"] == 8
    assert report["meta"]["still_to_run"] == [] and "sampler" not in report["meta"]["config"]
    assert (tmp_path / "out" / "sampler_comparison_nb201_cifar10_compare_cpu.png").is_file()

    # a later session: the run directories are gone, the committed report is there; nothing trains again
    shutil.rmtree(tmp_path / "runs")
    again = _compare(tmp_path, "--methods", "uniform", "pada", "--seeds", "0")
    assert not list((tmp_path / "runs").rglob("checkpoint.pt")), again.stdout[-2000:]
    assert json.loads((tmp_path / "out" / "sampler_comparison_nb201_cifar10_compare_cpu.json").read_text())["rows"] == report["rows"]

    # --report-only lists the rows still to run and trains none of them
    _compare(tmp_path, "--methods", "uniform", "pada", "--seeds", "0", "1", "--report-only")
    partial = json.loads((tmp_path / "out" / "sampler_comparison_nb201_cifar10_compare_cpu.json").read_text())
    assert partial["rows"] == report["rows"] and partial["meta"]["still_to_run"] == ["uniform seed 1", "pada seed 1"]
    assert not list((tmp_path / "runs").rglob("checkpoint.pt"))
    assert "Still to run" in (tmp_path / "out" / "sampler_comparison_nb201_cifar10_compare_cpu.md").read_text()


def test_rows_of_another_budget_or_arch_sample_are_not_reused(tmp_path: Path, load_script) -> None:
    module = load_script("compare_samplers")
    budget = {"trainer": {"epochs": 10}, "space": {"channels": 16}}
    row = {"method": "uniform", "seed": 0, "num_archs": 200, "sample_seed": 0}
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"meta": {"config": {**budget, "sampler": {"name": "uniform"}, "seed": 0}}, "rows": [row]}))

    class Args:
        num_archs, sample_seed = 200, 0

    assert module.finished_rows(report, Args, budget) == {("uniform", 0): row}
    assert module.finished_rows(report, Args, {**budget, "trainer": {"epochs": 5}}) == {}
    # a setting added to nasframe after the report: compatible while this invocation leaves it at its default
    newer = {**budget, "trainer": {"epochs": 10, "compile": "off"}}
    assert module.finished_rows(report, Args, newer, defaults=newer) == {("uniform", 0): row}
    assert module.finished_rows(report, Args, newer, defaults={**budget, "trainer": {"epochs": 10, "compile": "max"}}) == {}
    assert module.finished_rows(report, Args, newer) == {}
    Args.num_archs = 100
    assert module.finished_rows(report, Args, budget) == {}
