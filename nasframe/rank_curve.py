"""Ranking quality over training time: the same archs ranked by a run's supernet at every kept checkpoint.

A run trained with ``trainer.keep_every=N`` keeps its checkpoint every N epochs (``checkpoints/epoch_NNNN.pt``).
``nasframe rank run=... ranking.checkpoints=kept`` scores one fixed arch sample with each of them (and with the
final checkpoint) exactly as a single ranking does, and writes Kendall tau, Spearman and precision@top-10 %
against the epoch: ``ranking_curve.json`` (one row per checkpoint with ``method``, ``seed``, ``num_archs`` and
``found_true``, the true accuracy of the best-scored arch, as every results/ row) and ``ranking_curve.png``, with
the trivial baselines on the same archs (#params, FLOPs, a random ranking) as horizontal lines: where, if
anywhere, weight sharing crosses them. Each checkpoint's scores are kept in ``epoch_NNNN/scores.jsonl``;
``ranking.stop_after_s`` bounds the whole curve: a stopped curve writes the checkpoints it finished
(``complete`` false) and the same command continues.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasframe.config import RankingConfig
from nasframe.errors import ConfigError
from nasframe.evaluation.ranking import RankingReport, ScoringStopped, rank_archs
from nasframe.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from nasframe.training.restore import KEPT_DIR

CURVE_METRICS = ("kendall_tau", "spearman", "precision_at_top_10pct")


def kept_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every kept checkpoint of ``run_dir`` and of its final checkpoint, by epoch."""
    points = {}
    for path in sorted((run_dir / KEPT_DIR).glob("epoch_*.pt")):
        match = re.fullmatch(r"epoch_(\d+)\.pt", path.name)
        if match:
            points[int(match.group(1))] = path
    final = run_dir / CHECKPOINT_NAME
    if final.is_file():
        epoch = int(load_checkpoint(final, map_location="cpu")["epoch"])
        points.setdefault(epoch, final)
    return sorted(points.items())


def rank_over_training(setup: Any, run_dir: Path, archs: list, protocol: dict[str, Any], out: Path,
                       ranking: RankingConfig, benchmark: Any) -> tuple[RankingReport, Path]:
    from nasframe.rank import supernet_scorer, write_ranking

    points = kept_checkpoints(run_dir)
    if len(points) < 2:
        raise ConfigError(f"{run_dir} kept no checkpoints to rank over training: train it with trainer.keep_every=N "
                          f"(it has {len(points)} checkpoint{'s' if len(points) != 1 else ''})")
    truth = lambda native: benchmark.metric(native, ranking.truth_metric)  # noqa: E731
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    report = None
    try:
        for epoch, path in points:
            left = ranking.stop_after_s - (time.perf_counter() - started) if ranking.stop_after_s > 0 else 0.0
            if ranking.stop_after_s > 0 and left <= 0:
                raise ScoringStopped(len(rows) * len(archs), len(points) * len(archs), out)
            point = dict(protocol)
            score, store = supernet_scorer(setup, path, archs, point, out / f"epoch_{epoch:04d}", ranking)
            report = rank_archs(setup.space, score, truth, archs, point, store=store, stop_after_s=left)
            rows.append({"method": f"supernet ({setup.sampler.name}) at epoch {epoch}", "seed": setup.cfg.seed,
                         "num_archs": len(archs), "epoch": epoch, "checkpoint": str(path), **report.metrics,
                         "found_true": report.metrics["true_accuracy_of_best_scored"],
                         "scoring_seconds": report.seconds})
    except ScoringStopped:
        if report is not None:  # the checkpoints finished so far, marked incomplete; the rerun completes it
            write_curve(setup, report, rows, points, protocol, out, ranking)
        raise
    write_curve(setup, report, rows, points, protocol, out, ranking)
    write_ranking(report, out, title=f"{setup.space.name} supernet at epoch {rows[-1]['epoch']}")
    return report, out


def write_curve(setup: Any, report: RankingReport, rows: list[dict[str, Any]], points: list[tuple[int, Path]],
                protocol: dict[str, Any], out: Path, ranking: RankingConfig) -> None:
    """``ranking_curve.json`` and ``.png`` of the checkpoints ranked so far (``complete`` once all are), with the
    trivial baselines on the same archs; the baselines also go into ``report``."""
    from nasframe.rank import rank_baselines

    baselines = rank_baselines(setup, report, out)
    report.extra.update({"baselines": baselines, "curve": rows})
    curve = {"protocol": {**protocol, "checkpoints": [str(p) for _, p in points]},
             "complete": len(rows) == len(points), "curve": rows, "baselines": baselines}
    (out / "ranking_curve.json").write_text(json.dumps(curve, indent=1) + "\n")
    ranked = "" if curve["complete"] else f", {len(rows)} of {len(points)} checkpoints so far"
    plot_curve(rows, baselines, out / "ranking_curve.png",
               title=f"{setup.space.name}: {len(report.archs)} archs vs {ranking.truth_metric}{ranked}")


def plot_curve(rows: list[dict[str, Any]], baselines: dict[str, dict[str, float]], path: Path, title: str = "") -> Path:
    """Each metric against the epoch, the baselines' values of the same metric as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.array([r["epoch"] for r in rows])
    fig, axes = plt.subplots(1, len(CURVE_METRICS), figsize=(4.2 * len(CURVE_METRICS), 3.6), dpi=120)
    # baselines often tie (#params and FLOPs rank NB201 samples alike): distinct colours, values in the legend
    styles = {"params": ("tab:orange", ":"), "flops": ("tab:green", "--"), "random (expected)": ("grey", "-.")}
    for ax, metric in zip(axes, CURVE_METRICS):
        ax.plot(epochs, [r[metric] for r in rows], marker="o", label="supernet")
        for name, values in baselines.items():
            colour, line = styles.get(name, ("black", ":"))
            ax.axhline(values[metric], color=colour, linestyle=line, linewidth=1.5,
                       label=f"{name} {values[metric]:.3f}")
        ax.set_xlabel("epoch")
        ax.set_title(metric.replace("_", " "), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
