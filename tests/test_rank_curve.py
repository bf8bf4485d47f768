"""Ranking over training time: kept checkpoints, the curve against the epoch, baselines beside it."""

from __future__ import annotations

import json

import pytest

from nasframe import rank_curve
from nasframe.cli import compose_config
from nasframe.evaluation.ranking import ScoringStopped
from nasframe.rank import run_rank
from test_cli import TINY, nasframe, synthetic_nb201_table


def test_a_run_keeps_checkpoints_and_rank_draws_its_ranking_curve(tmp_path):
    run_dir = tmp_path / "run"
    proc = nasframe("search", *TINY, "trainer.epochs=3", "trainer.keep_every=1", f"hydra.run.dir={run_dir}",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kept = sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt"))
    assert kept == ["epoch_0001.pt", "epoch_0002.pt", "epoch_0003.pt"]
    table = synthetic_nb201_table(tmp_path / "table.csv")
    out = tmp_path / "curve"
    ranked = nasframe("rank", f"run={run_dir}", f"benchmark.path={table}", "ranking.num_archs=8",
                      "ranking.checkpoints=kept", "evaluator.bn_recalibration_batches=1", f"out={out}",
                      f"hydra.run.dir={tmp_path / 'rank'}", cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    curve = json.loads((out / "ranking_curve.json").read_text())
    assert [row["epoch"] for row in curve["curve"]] == [1, 2, 3]
    for row in curve["curve"]:  # machine-readable as every results/ row
        assert row["method"] == f"supernet (uniform) at epoch {row['epoch']}" and row["seed"] == 0
        assert row["num_archs"] == 8 and row["found_true"] == row["true_accuracy_of_best_scored"]
    assert set(curve["baselines"]) == {"params", "flops", "random (expected)"}
    assert (out / "ranking_curve.png").stat().st_size > 1000
    final = json.loads((out / "ranking.json").read_text())
    assert final["metrics"] == {k: v for k, v in curve["curve"][-1].items() if k in final["metrics"]}
    # one checkpoint differs from the next: each epoch's scores are its own
    scores = [json.loads((out / f"epoch_{e:04d}/scores.jsonl").read_text().splitlines()[-1]) for e in (1, 3)]
    assert scores[0] != scores[1]
    check_a_stopped_curve_writes_what_it_finished(tmp_path, run_dir, table, curve)
    single = nasframe("rank", f"run={tmp_path / 'nothing'}", "ranking.checkpoints=kept",
                      f"hydra.run.dir={tmp_path / 'r2'}", cwd=tmp_path)
    assert single.returncode != 0 and "Traceback" not in single.stderr
    # the same run ranked by the hybrid evaluator: supernet accuracy and #params, log-rank combined
    hybrid = nasframe("rank", f"run={run_dir}", f"benchmark.path={table}", "ranking.num_archs=8", "evaluator=hybrid",
                      "evaluator.proxy=params", "evaluator.bn_recalibration_batches=1", f"out={tmp_path / 'hybrid'}",
                      f"hydra.run.dir={tmp_path / 'r3'}", cwd=tmp_path)
    assert hybrid.returncode == 0, hybrid.stderr[-3000:]
    report = json.loads((tmp_path / "hybrid/ranking.json").read_text())
    assert report["protocol"]["hybrid"]["components"] == ["supernet", "params"]
    assert all(a["score"] <= 0 for a in report["archs"])  # sums of log-ranks


def check_a_stopped_curve_writes_what_it_finished(tmp_path, run_dir, table, full_curve):
    """A curve stopped at its time limit after its first checkpoint writes that checkpoint's row, marked
    incomplete, with the baselines; the same command then completes it from the scores kept."""
    out = tmp_path / "partial"
    cfg = compose_config("rank", [f"run={run_dir}", f"benchmark.path={table}", "ranking.num_archs=8",
                                  "ranking.checkpoints=kept", "evaluator.bn_recalibration_batches=1", f"out={out}"])
    real = rank_curve.rank_archs
    calls = []

    def stops_on_the_second_checkpoint(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ScoringStopped(0, 8, out)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rank_curve, "rank_archs", stops_on_the_second_checkpoint)
        with pytest.raises(ScoringStopped):
            run_rank(cfg)
    partial = json.loads((out / "ranking_curve.json").read_text())
    assert partial["complete"] is False and [row["epoch"] for row in partial["curve"]] == [1]
    assert partial["baselines"] == full_curve["baselines"]
    assert not (out / "ranking.json").exists()  # the final checkpoint's report comes with the whole curve
    run_rank(cfg)
    complete = json.loads((out / "ranking_curve.json").read_text())
    assert complete["complete"] is True and [row["epoch"] for row in complete["curve"]] == [1, 2, 3]
    assert [r["kendall_tau"] for r in complete["curve"]] == [r["kendall_tau"] for r in full_curve["curve"]]
