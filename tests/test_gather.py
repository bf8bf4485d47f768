"""Parallel multirun jobs (Hydra's joblib launcher) and `nasframe gather`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nasframe.errors import ConfigError, DataError
from nasframe.gather import gather, group_key

TINY = ["space.channels=4", "space.cells_per_stage=1", "trainer.epochs=1", "trainer.batch_size=128",
        "selector=random", "selector.num_samples=2", "evaluator.bn_recalibration_batches=1",
        "export.torch_export=false", "threads=1", "device=cpu"]


def nasframe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasframe.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_joblib_multirun_jobs_write_their_own_runs_and_gather_reports_them(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = nasframe("search", "-m", "hydra/launcher=local", "seed=0,1", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "joblib" in (proc.stdout + proc.stderr).lower()  # Hydra's joblib launcher ran the jobs
    runs = sorted(p.parent for p in sweep.rglob("outcome.json"))
    assert [r.name for r in runs] == ["0", "1"]
    assert {json.loads((r / "outcome.json").read_text())["seed"] for r in runs} == {0, 1}
    (sweep / "2").mkdir()
    (sweep / "2" / "checkpoint.pt").write_bytes(b"")  # a job that never finished

    proc = nasframe("gather", str(sweep), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((sweep / "gather.json").read_text())
    assert [r["run"] for r in report["rows"]] == ["0", "1"]
    assert report["rows"][0]["overrides"][0] == "seed=0"
    (unfinished,) = report["unfinished"]
    assert unfinished["run"] == "2" and unfinished["progress"].startswith("unreadable checkpoint")
    (summary,) = report["summary"]  # the two seeds are repeats of one setting
    assert summary["runs"] == 2
    mean = sum(r["test_accuracy"] for r in report["rows"]) / 2
    assert summary["test_accuracy"][0] == pytest.approx(mean)
    assert "2 finished, 1 unfinished" in (sweep / "gather.md").read_text()


def test_unfinished_runs_are_named_and_nested_parts_belong_to_their_run(tmp_path: Path) -> None:
    from nasframe.gather import find_runs

    started = tmp_path / "sweep" / "3"
    (started / ".hydra").mkdir(parents=True)
    (started / ".hydra" / "overrides.yaml").write_text("- seed=3\n")  # killed before its first checkpoint
    finished = tmp_path / "sweep" / "4"
    (finished / "parts" / "0").mkdir(parents=True)
    (finished / "outcome.json").write_text("{}")
    (finished / "parts" / "0" / "checkpoint.pt").write_bytes(b"")  # a few-shot part of run 4, not a run
    done, unfinished = find_runs(tmp_path / "sweep")
    assert done == [finished] and unfinished == [started]
    from nasframe.gather import describe_unfinished

    described = describe_unfinished(started, tmp_path / "sweep")
    assert described["overrides"] == ["seed=3"] and described["progress"].startswith("no checkpoint")


def test_gather_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such directory"):
        gather(tmp_path / "missing")
    with pytest.raises(DataError, match="no search runs under"):
        gather(tmp_path)
    proc = nasframe("gather", str(tmp_path / "missing"), cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.strip().startswith("nasframe gather: error: gather: no such directory")
    assert "Traceback" not in proc.stderr


def test_seed_is_not_part_of_the_setting() -> None:
    assert group_key({"overrides": ["seed=3", "sampler=pada"]}) == "sampler=pada"
    assert group_key({"overrides": ["seed=3"]}) == "(defaults)"


@pytest.mark.parametrize("legacy", [False, True], ids=["rows-with-kind", "outcomes-before-kind"])
def test_training_free_runs_are_gathered_with_their_baselines(tmp_path: Path, legacy: bool) -> None:
    from nasframe.gather import gather
    from nasframe.selection.baselines import BaselineRow

    for seed, (picked, random, evaluations) in enumerate([(93.0, 92.0, 200), (94.0, 93.0, 197)]):
        run = tmp_path / str(seed)
        run.mkdir()
        rows = [BaselineRow("selected", "a", 1.0, 10, None, picked, "selected").to_dict(),
                BaselineRow("largest arch", "b", 1.0, 10, None, 93.76, "largest").to_dict(),
                BaselineRow(f"random search, {evaluations} evaluations", "c", 1.0, 10, None, random,
                            "random search", evaluations).to_dict()]
        if legacy:  # outcomes written before rows carried their kind and evaluations: the label alone
            rows = [{"label": row["label"], "true_accuracy": row["true_accuracy"]} for row in rows]
        (run / "outcome.json").write_text(json.dumps({  # evaluator=zero_cost: no valid or test accuracy
            "space": "nb201", "arch": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "seed": seed,
            "params": 10, "seconds": {"train": 0.0, "total": 1.0}, "baselines": {"rows": rows}}))
    report = gather(tmp_path).read_text()
    summary = json.loads((tmp_path / "gather.json").read_text())["summary"]
    assert summary[0]["baselines"] == {"selected": [93.5, 0.5], "largest arch": [93.76, 0.0],
                                       "random search, 197-200 evaluations": [92.5, 0.5]}
    assert "| random search, 197-200 evaluations | 92.50 ± 0.50 |" in report  # one baseline over seeds


def test_true_accuracies_come_from_nasbench_graph_for_gnn_runs(tmp_path: Path) -> None:
    pytest.importorskip("nas_bench_graph", reason="needs the nas-bench-graph package")
    from nasframe.benchmarks.nasbench_graph import NASBenchGraph

    arch = "Arch([0, 1, 1, 2], ['gin', 'gin', 'arma', 'gin'])"
    run = tmp_path / "0"
    run.mkdir()
    (run / "outcome.json").write_text(json.dumps({"space": "gnn_bench", "arch": arch, "seed": 0, "params": 10,
                                                  "seconds": {"train": 0.0, "total": 1.0}}))
    gather(tmp_path, benchmark="nasbench_graph", benchmark_dataset="citeseer")
    payload = json.loads((tmp_path / "gather.json").read_text())
    assert payload["true_metric"] == "citeseer_test"  # the benchmark's test metric unless --metric names another
    assert payload["rows"][0]["true_accuracy"] == NASBenchGraph(dataset="citeseer").metric(arch, "citeseer_test")
    assert payload["rows"][0]["found_true"] == payload["rows"][0]["true_accuracy"]  # the results/ rows' column
    assert payload["rows"][0]["method"] == "(defaults)" and payload["rows"][0]["seed"] == 0
    with pytest.raises(ConfigError, match="unknown benchmark 'nb301'; known: nasbench_graph, nb201"):
        gather(tmp_path, benchmark="nb301")


def test_random_search_rows_with_equal_counts_keep_their_label() -> None:
    from nasframe.gather import baseline_means

    members = [{"baselines": {"rows": [{"label": "random search, 100 evaluations", "true_accuracy": value},
                                       {"label": "best of the 100 labelled archs (x)", "true_accuracy": 94.0}]}}
               for value in (93.0, 94.0)]
    assert baseline_means(members) == {"random search, 100 evaluations": (93.5, 0.5),
                                       "best of the 100 labelled archs (x)": (94.0, 0.0)}


def test_baselines_are_grouped_by_kind_and_evaluations_not_by_label() -> None:
    from nasframe.gather import baseline_means

    members = [{"baselines": {"rows": [{"label": label, "kind": "random search", "evaluations": count,
                                        "true_accuracy": value}]}}
               for label, count, value in (("random, seed 0", 12, 93.0), ("random, seed 1", 15, 94.0))]
    assert baseline_means(members) == {"random search, 12-15 evaluations": (93.5, 0.5)}
