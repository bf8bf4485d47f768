"""Training-free search and ranking from the CLI, each beside its trivial baselines."""

from __future__ import annotations

import json

import pytest

from test_cli import nasframe, synthetic_nb201_table

TINY_SPACE = ["space.channels=4", "space.cells_per_stage=1"]


def test_rank_without_a_run_scores_untrained_networks_beside_params_flops_and_random(tmp_path):
    table = synthetic_nb201_table(tmp_path / "table.csv")
    out = tmp_path / "ranked"
    ranked = nasframe("rank", "evaluator=zero_cost", "evaluator.proxy=[synflow,params]", "space=nb201", "dataset=digits",
                      *TINY_SPACE, f"benchmark.path={table}", "ranking.num_archs=10", f"out={out}",
                      f"hydra.run.dir={tmp_path / 'rank'}", cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    report = json.loads((out / "ranking.json").read_text())
    assert report["protocol"]["run"] is None and "synflow, params" in report["protocol"]["score"]
    assert report["protocol"]["evaluator"]["proxies"]["synflow"]["settings"]["bn"] == "eval"  # the paper's setting
    assert set(report["baselines"]) == {"params", "flops", "random (expected)"}
    assert report["baselines"]["random (expected)"]["precision_at_top_10pct"] == pytest.approx(0.1)
    assert len(report["archs"]) == 10 and "flops" in ranked.stdout
    assert "scored on digits, the truth is cifar10_test" in report["protocol"]["note"] and "note:" in ranked.stdout
    kept = (out / "proxy_values.jsonl").read_text().splitlines()
    assert 1 <= len(kept) <= 10  # isomorphic cells scored once, kept for a rerun


def test_the_assembly_preset_ranks_from_the_cli_with_its_per_proxy_settings(tmp_path):
    table = synthetic_nb201_table(tmp_path / "table.csv")
    out = tmp_path / "ranked"
    ranked = nasframe("rank", "evaluator=zero_cost_assembly", "space=nb201", "dataset=digits", *TINY_SPACE,
                      f"benchmark.path={table}", "ranking.num_archs=6", f"out={out}",
                      f"hydra.run.dir={tmp_path / 'rank'}", cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    proxies = json.loads((out / "ranking.json").read_text())["protocol"]["evaluator"]["proxies"]
    assert set(proxies) == {"az_nas", "params", "synflow", "jacov"}
    assert proxies["synflow"]["settings"]["bn"] == "calibrated" and proxies["synflow"]["settings"]["input"] == "real"
    assert proxies["az_nas"]["settings"]["bn"] == "train"  # AZ-NAS's own mode: the synflow override stays there
    assert {p["settings"]["batch_size"] for n, p in proxies.items() if n != "params"} == {16}


def test_rank_needs_a_run_or_a_training_free_evaluator(tmp_path):
    missing = nasframe("rank", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert missing.returncode != 0 and "needs run=" in missing.stderr and "Traceback" not in missing.stderr
    both = nasframe("rank", "run=somewhere", "evaluator=zero_cost", "space=nb201", "dataset=digits",
                    f"hydra.run.dir={tmp_path / 'r2'}", cwd=tmp_path)
    assert both.returncode != 0 and "not both" in both.stderr


def test_training_free_search_trains_nothing_and_reports_its_baselines(tmp_path):
    table = synthetic_nb201_table(tmp_path / "table.csv")
    run_dir = tmp_path / "run"
    proc = nasframe("search", "evaluator=zero_cost", "evaluator.proxy=synflow", "selector=random",
                    "selector.num_samples=6", *TINY_SPACE, "benchmark=nb201", f"benchmark.path={table}",
                    f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (run_dir / "checkpoint.pt").exists() and not (run_dir / "export/subnet_state_dict.pt").exists()
    outcome = json.loads((run_dir / "outcome.json").read_text())
    rows = outcome["baselines"]["rows"]
    assert [r["label"].split(",")[0] for r in rows] == ["selected", "largest arch", "random search"]
    assert rows[1]["native"].count("nor_conv_3x3") == 6 and all(r["true_accuracy"] is not None for r in rows)
    assert json.loads((run_dir / "export/arch.json").read_text())["trained"] is False
    report = (run_dir / "report.md").read_text()
    assert "Beside the trivial baselines" in report and "true accuracy (cifar10_test)" in report
    refused = nasframe("search", "evaluator=zero_cost", "selector=magnitude", f"hydra.run.dir={tmp_path / 'x'}",
                       cwd=tmp_path)
    assert refused.returncode != 0 and "trains none" in refused.stderr and "Traceback" not in refused.stderr


def test_the_learned_evaluator_ranks_without_its_labelled_archs_and_searches(tmp_path):
    table = synthetic_nb201_table(tmp_path / "table.csv")
    out = tmp_path / "ranked"
    learned = ["evaluator=learned", "evaluator.proxy=[params,synflow]", "evaluator.num_labelled=6",
               "evaluator.reference_archs=4", *TINY_SPACE, f"benchmark.path={table}"]
    ranked = nasframe("rank", *learned, "space=nb201", "dataset=digits", "ranking.num_archs=20", f"out={out}",
                      f"hydra.run.dir={tmp_path / 'rank'}", cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    report = json.loads((out / "ranking.json").read_text())
    labelled = set(report["protocol"]["evaluator"]["labelled"])
    assert len(labelled) == 6 and report["protocol"]["evaluator"]["model"] == "gbt"
    assert not labelled & {a["arch"] for a in report["archs"]}  # never scored on what it was fitted on
    assert "labelled archs (cifar10_test)" in report["protocol"]["archs"]
    run_dir = tmp_path / "run"
    searched = nasframe("search", *learned, "benchmark=nb201", "selector=random", "selector.num_samples=5",
                        f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert searched.returncode == 0, searched.stderr[-3000:]
    outcome = json.loads((run_dir / "outcome.json").read_text())
    assert outcome["evaluator"] == "learned"
    # the labelled archs were a random search with true evaluations: the report shows their best beside the pick
    labels = json.loads((run_dir / "selection.json").read_text())["details"]["evaluator"]["labels"]
    best = [row for row in outcome["baselines"]["rows"] if row["label"].startswith("best of the 6 labelled archs")]
    assert len(best) == 1 and best[0]["true_accuracy"] == max(labels)
    assert "best of the 6 labelled archs (cifar10_test)" in (run_dir / "report.md").read_text()
    without = nasframe("search", "evaluator=learned", f"hydra.run.dir={tmp_path / 'x'}", cwd=tmp_path)
    assert without.returncode != 0 and "benchmark=nb201" in without.stderr and "Traceback" not in without.stderr


def test_the_best_learned_model_ranks_from_the_cli_and_needs_a_cell_for_its_features(tmp_path):
    """model=gbt+pairwise with cell features (the best measured in results/zero_cost_nb201/zero_cost_learned.md)."""
    table = synthetic_nb201_table(tmp_path / "table.csv")
    out = tmp_path / "ranked"
    learned = ["evaluator=learned", "evaluator.proxy=[params,synflow]", "evaluator.num_labelled=8",
               "evaluator.reference_archs=4", "evaluator.model=gbt+pairwise", "evaluator.cell_features=true",
               *TINY_SPACE, f"benchmark.path={table}"]
    ranked = nasframe("rank", *learned, "space=nb201", "dataset=digits", "ranking.num_archs=20", f"out={out}",
                      f"hydra.run.dir={tmp_path / 'rank'}", cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    report = json.loads((out / "ranking.json").read_text())
    assert report["protocol"]["evaluator"]["model"] == "gbt+pairwise"
    assert report["protocol"]["evaluator"]["cell_features"] is True
    assert len({a["score"] for a in report["archs"]}) > 1  # scored one by one, the scores still differ


def test_the_learned_evaluator_fits_on_a_user_s_own_trained_archs_without_a_benchmark(tmp_path):
    """evaluator.labels_from: the archs of `nasframe train` runs, labelled by their valid accuracy."""
    cells = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
             "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_1x1~2|"]
    for i, cell in enumerate(cells):
        trained = nasframe("train", "space=nb201", "dataset=digits", "space.channels=4", "space.cells_per_stage=1",
                           f"arch='{cell}'", "+protocol=nb201", "trainer.epochs=1", "trainer.batch_size=128",
                           "trainer.progress=false", f"hydra.run.dir={tmp_path / 'trained' / str(i)}", cwd=tmp_path)
        assert trained.returncode == 0, trained.stderr[-3000:]
    run_dir = tmp_path / "search"
    proc = nasframe("search", "evaluator=learned", "evaluator.proxy=[params]", "evaluator.reference_archs=8",
                    f"evaluator.labels_from={tmp_path / 'trained'}", "selector=random", "selector.num_samples=5",
                    "space.channels=4", "space.cells_per_stage=1", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluator = json.loads((run_dir / "selection.json").read_text())["details"]["evaluator"]
    from search_spaces.nb201 import NB201Space

    space = NB201Space()
    assert sorted(evaluator["labelled"]) == sorted(space.format(space.canonical(space.parse(c))) for c in cells)
    outcomes = [json.loads((tmp_path / "trained" / str(i) / "outcome.json").read_text()) for i in range(2)]
    assert sorted(evaluator["labels"]) == sorted(o["valid_accuracy"] for o in outcomes)  # valid, never test
    missing = nasframe("search", "evaluator=learned", f"evaluator.labels_from={tmp_path / 'nowhere'}",
                       f"hydra.run.dir={tmp_path / 'x'}", cwd=tmp_path)
    assert missing.returncode != 0 and "is not a folder" in missing.stderr and "Traceback" not in missing.stderr
